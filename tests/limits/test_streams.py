"""--max-streams (503 before the stream starts; gRPC RESOURCE_EXHAUSTED) and
--max-streams-per-ip (429), with client addresses through --trust-proxy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

from roomchat.adapters.grpc.generated import message_pb2 as pb
from tests.adapters.grpc.client import room_stub
from tests.limits.clients import Answer, Connection
from tests.support import roomchat_process


@contextlib.asynccontextmanager
async def held() -> AsyncIterator[list[Connection]]:
    connections: list[Connection] = []
    try:
        yield connections
    finally:
        for connection in connections:
            connection.close()


async def open_stream(
    connections: list[Connection], base: str, room: str, source: str = "127.0.0.1", **headers: str
) -> Answer:
    connection = await Connection.open(base, source)
    connections.append(connection)
    return await connection.request("GET", f"/api/stream/{room}", headers=headers)


async def until_accepted(base: str, room: str, source: str = "127.0.0.1", **headers: str) -> Answer:
    """A new stream, tried until it opens (the server hears of closed streams over the network)."""
    async with held() as connections:
        for _ in range(100):
            answer = await open_stream(connections, base, room, source, **headers)
            if answer.status == 200:
                return answer
            connections.pop().close()
            await asyncio.sleep(0.05)
    return answer


async def test_past_max_streams_a_new_stream_is_503_before_it_starts_on_every_transport() -> None:
    args = ("--adapter", "rest", "--adapter", "grpc", "--port", "rest=0", "--port", "grpc=0")
    with roomchat_process(*args, "--max-streams", "3", expect=2) as server:
        base = server.urls["rest"]
        async with held() as streams, room_stub(server.urls["grpc"]) as stub:
            assert [(await open_stream(streams, base, f"r{i}")).status for i in range(2)] == [200, 200]
            call = stub.StreamRoom(pb.RoomRequest(roomId="g"))
            await call.initial_metadata()  # the third stream is open

            refused = await open_stream(streams, base, "r9")
            assert refused.status == 503
            assert refused.headers["content-type"] == "application/json"
            assert refused.json() == {
                "code": 503,
                "message": "too many open streams on this server (at most 3)",
            }

            late = stub.StreamRoom(pb.RoomRequest(roomId="g2"))
            try:
                await late.read()
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "too many open streams" in (exc.details() or "")
            else:
                raise AssertionError("a fourth stream opened")

            health = await streams[-1].request("GET", "/healthz")  # the refused stream's connection stays
            assert health.status == 200
            streams.pop(0).close()
            assert (await until_accepted(base, "r0")).status == 200  # one closed: room for one more
            call.cancel()
        assert server.terminate() == 0


async def test_past_max_streams_per_ip_a_new_stream_from_that_ip_is_429() -> None:
    with roomchat_process("--adapter", "rest", "--port", "rest=0", "--max-streams-per-ip", "2") as server:
        base = server.urls["rest"]
        async with held() as streams:
            assert [(await open_stream(streams, base, "r")).status for _ in range(2)] == [200, 200]
            refused = await open_stream(streams, base, "r")
            assert refused.status == 429
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["message"] == "too many open streams from 127.0.0.1 (at most 2)"

            assert (await open_stream(streams, base, "r", source="127.0.0.2")).status == 200  # another IP
            streams.pop(0).close()
            assert (await until_accepted(base, "r")).status == 200


async def test_behind_a_trusted_proxy_the_limit_counts_x_forwarded_for() -> None:
    env = {"ROOMCHAT_TRUST_PROXY": "127.0.0.1/32,::1"}  # a comma list, as for every repeated option
    with roomchat_process(
        "--adapter", "rest", "--port", "rest=0", "--max-streams-per-ip", "1", env=env
    ) as server:
        base = server.urls["rest"]
        async with held() as streams:
            ann = {"x-forwarded-for": "203.0.113.7"}
            bob = {"x-forwarded-for": "198.51.100.1, 203.0.113.8"}  # the proxy appended the client last
            assert (await open_stream(streams, base, "r", **ann)).status == 200
            assert (await open_stream(streams, base, "r", **bob)).status == 200  # another client, same proxy
            refused = await open_stream(streams, base, "r", **ann)
            assert refused.status == 429
            assert "203.0.113.7" in refused.json()["message"]


async def test_an_untrusted_peers_x_forwarded_for_is_ignored() -> None:
    args = (
        "--adapter",
        "rest",
        "--port",
        "rest=0",
        "--max-streams-per-ip",
        "1",
        "--trust-proxy",
        "127.0.0.1",
    )
    with roomchat_process(*args) as server:
        base = server.urls["rest"]
        async with held() as streams:
            first = await open_stream(streams, base, "r", "127.0.0.2", **{"x-forwarded-for": "203.0.113.1"})
            assert first.status == 200
            spoofed = await open_stream(streams, base, "r", "127.0.0.2", **{"x-forwarded-for": "203.0.113.2"})
            assert spoofed.status == 429  # counted as 127.0.0.2, whatever it claims
            assert "127.0.0.2" in spoofed.json()["message"]
