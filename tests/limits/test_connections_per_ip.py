"""Connections per client IP (issue 24, item 8): on by default (--max-connections-per-ip 256).

600 idle HTTP connections from one client once made every client's request 503,
and 512 idle TCP connections held every gRPC slot for about 35 s. Now one peer
address holds at most 256 connections on each of HTTP and gRPC, a gRPC
connection that has not sent the HTTP/2 preface and SETTINGS within 5 s is
closed, and another client is answered within 200 ms throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from roomchat.adapters import DEFAULT_CONNECTIONS_PER_IP
from roomchat.adapters.grpc import connection as grpc_connection
from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.adapters.grpc.generated import message_pb2_grpc as pb_grpc
from tests.adapters.grpc.client import target
from tests.limits.clients import Connection
from tests.limits.probe import BOUND, probing, rss_mib
from tests.support import roomchat_process, serve

ATTACKER = "127.0.0.2"


@contextlib.asynccontextmanager
async def idle_sockets(url: str, count: int, source: str = ATTACKER) -> AsyncIterator[list[Connection]]:
    """`count` TCP connections from `source` that send nothing."""
    held = [await Connection.open(url.replace("grpc://", "http://"), source) for _ in range(count)]
    try:
        yield held
    finally:
        for connection in held:
            connection.close()


async def ended(connection: Connection, within: float) -> bool:
    """Whether the server ends the connection (EOF or reset) within `within` seconds."""
    try:
        await asyncio.wait_for(connection.reader.read(), within)
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_one_ip_holds_at_most_256_http_connections_by_default() -> None:
    with roomchat_process("--adapter", "rest", "--port", "rest=0") as server:
        base = server.urls["rest"]
        before = rss_mib(server.proc.pid)
        async with probing(base) as probe, idle_sockets(base, DEFAULT_CONNECTIONS_PER_IP):
            for _ in range(50):  # each past the cap: answered 429 and closed, nothing kept
                one_more = await Connection.open(base, ATTACKER)
                answer = await one_more.request("GET", "/healthz")
                assert answer.status == 429, answer
                assert answer.json()["message"] == f"too many open connections from {ATTACKER} (at most 256)"
                assert await one_more.closed_by_server()
            grown = rss_mib(server.proc.pid) - before
        assert probe.worst < BOUND and not probe.failures, (probe.worst, probe.failures)
        assert grown < 32, f"RSS grew {grown:.1f} MiB"
        # Once they close, the same IP is welcome again.
        async with probing(base, source=ATTACKER) as again:
            pass
        assert not again.failures
        assert server.terminate() == 0


async def test_a_trusted_proxy_is_not_capped() -> None:
    async with serve("rest", max_connections_per_ip=2, trust_proxy=(f"{ATTACKER}/32",)) as server:
        base = server.url()
        async with idle_sockets(base, 3):
            through_proxy = await Connection.open(base, ATTACKER)
            assert (await through_proxy.request("GET", "/healthz")).status == 200
            through_proxy.close()
        async with idle_sockets(base, 2, source="127.0.0.3"):
            direct = await Connection.open(base, "127.0.0.3")
            assert (await direct.request("GET", "/healthz")).status == 429
            direct.close()


async def test_grpc_one_ip_holds_at_most_256_connections_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grpc_connection, "HANDSHAKE_TIMEOUT", 120.0)  # the held sockets stay while it runs
    async with serve("rest", "grpc") as server:
        url = server.url("grpc")
        async with probing(server.url()) as probe, idle_sockets(url, DEFAULT_CONNECTIONS_PER_IP):
            for _ in range(20):
                async with idle_sockets(url, 1) as (one_more,):
                    assert await ended(one_more, 1.0)  # past the cap: closed at once
            own = [("grpc.use_local_subchannel_pool", 1)]
            async with grpc.aio.insecure_channel(target(url), options=own) as channel:  # from 127.0.0.1
                sent = time.monotonic()
                await pb_grpc.RoomStub(channel).GetRoom(pb.RoomRequest(roomId="r"), timeout=5)
                took = time.monotonic() - sent
        assert probe.worst < BOUND and not probe.failures, (probe.worst, probe.failures)
        assert took < 1.0, took  # a new connection and its first rpc


async def test_grpc_connections_silent_past_the_handshake_deadline_are_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(grpc_connection, "HANDSHAKE_TIMEOUT", 1.0)
    async with serve("grpc") as server:
        url = server.url("grpc")
        own = [("grpc.use_local_subchannel_pool", 1)]
        async with (
            idle_sockets(url, 20) as held,
            grpc.aio.insecure_channel(target(url), options=own) as channel,
        ):
            stub = pb_grpc.RoomStub(channel)
            await stub.GetRoom(pb.RoomRequest(roomId="r"), timeout=5)
            started = time.monotonic()
            assert all(await asyncio.gather(*(ended(c, 10.0) for c in held)))
            waited = time.monotonic() - started
            # A client that spoke HTTP/2 keeps its connection past the deadline.
            state = channel.get_state()
            await stub.GetRoom(pb.RoomRequest(roomId="r"), timeout=5)
        assert waited < 1.0 + 5.0, waited
        assert state is grpc.ChannelConnectivity.READY


async def test_grpc_connections_from_another_ip_are_not_refused() -> None:
    async with serve("grpc", max_connections_per_ip=2) as server:
        url = server.url("grpc")
        async with idle_sockets(url, 2):
            async with idle_sockets(url, 1) as (refused,):
                assert await ended(refused, 1.0)
            own = [("grpc.use_local_subchannel_pool", 1)]
            async with grpc.aio.insecure_channel(target(url), options=own) as channel:  # from 127.0.0.1
                await pb_grpc.RoomStub(channel).GetRoom(pb.RoomRequest(roomId="r"), timeout=5)
