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
from tests.limits.probe import BOUND, probing
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
        async with probing(base) as probe, idle_sockets(base, DEFAULT_CONNECTIONS_PER_IP):
            one_more = await Connection.open(base, ATTACKER)
            answer = await one_more.request("GET", "/healthz")
            assert answer.status == 429, answer
            assert answer.json()["message"] == f"too many open connections from {ATTACKER} (at most 256)"
            assert await one_more.closed_by_server()
        assert probe.worst < BOUND and not probe.failures, (probe.worst, probe.failures)
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


async def test_grpc_one_ip_holds_at_most_256_connections_and_silent_ones_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(grpc_connection, "HANDSHAKE_TIMEOUT", 1.0)
    async with serve("rest", "grpc") as server:
        url = server.url("grpc")
        async with probing(server.url()) as probe, idle_sockets(url, DEFAULT_CONNECTIONS_PER_IP) as held:
            async with idle_sockets(url, 1) as (one_more,):
                assert await ended(one_more, 1.0)  # past the cap: closed at once
            started = time.monotonic()
            # Another client's rpcs are answered while the sockets are held...
            async with grpc.aio.insecure_channel(target(url)) as channel:
                answer = await pb_grpc.RoomStub(channel).GetRoom(
                    pb.RoomRequest(roomId="r"), timeout=BOUND * 5
                )
                assert answer.success or answer.data
                # ...and the silent sockets are closed once the handshake deadline passes.
                assert all(await asyncio.gather(*(ended(c, 5.0) for c in held)))
                waited = time.monotonic() - started
                # The IP's slots are free again; a client that speaks HTTP/2 keeps its connection.
                await asyncio.sleep(1.5)
                await pb_grpc.RoomStub(channel).GetRoom(pb.RoomRequest(roomId="r"), timeout=5)
        assert waited < 1.0 + 5.0
        assert probe.worst < BOUND and not probe.failures, (probe.worst, probe.failures)


async def test_grpc_connections_from_another_ip_are_not_refused() -> None:
    async with serve("grpc", max_connections_per_ip=2) as server:
        url = server.url("grpc")
        async with idle_sockets(url, 2):
            async with idle_sockets(url, 1) as (refused,):
                assert await ended(refused, 1.0)
            own = [("grpc.use_local_subchannel_pool", 1)]
            async with grpc.aio.insecure_channel(target(url), options=own) as channel:  # from 127.0.0.1
                await pb_grpc.RoomStub(channel).GetRoom(pb.RoomRequest(roomId="r"), timeout=5)
