"""The open-file limit (contract: Limits): raised at start-up, and however many connections
and streams are open, `/healthz`, a post and a new stream are answered (503 at worst) and
closed in order, never reset or left waiting; once they close, everything works again.

The server runs with its limit lowered (tests.limits.low_nofile) so the test reaches it in seconds.
"""

from __future__ import annotations

import asyncio
import json
import re

import grpc
import httpx

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.descriptors import Budget
from tests.adapters.grpc.client import room_stub
from tests.limits.clients import Answer, Connection
from tests.support import roomchat_process

LIMIT = 256
FULL = {"code": 503, "message": "the server has too many open connections; try again shortly"}
POST = json.dumps({"userId": "ann", "text": "hello"}).encode()
REQUESTS = [("GET", "/healthz", b""), ("POST", "/api/room/r", POST), ("GET", "/api/stream/r", b"")]


async def once(base: str, method: str, path: str, body: bytes = b"") -> tuple[Answer, bool]:
    """A request on a fresh connection: its answer, and whether the server then closed it in order."""
    connection = await Connection.open(base)
    try:
        answer = await connection.request(method, path, body)
        return answer, answer.status != 200 and await connection.closed_by_server()
    finally:
        connection.close()


async def test_at_the_open_file_limit_every_request_is_answered_and_all_recovers() -> None:
    fds = Budget(LIMIT)
    args = ("--adapter", "rest", "--adapter", "grpc", "--port", "rest=0", "--port", "grpc=0")
    with roomchat_process(*args, expect=2, command=("tests.limits.low_nofile", str(LIMIT))) as server:
        base = server.urls["rest"]
        held: list[Connection] = []
        try:
            async with room_stub(server.urls["grpc"]) as stub:
                # Streams up to --max-streams auto, then 503 before a stream starts.
                for i in range(fds.streams + 1):
                    held.append(await Connection.open(base))
                    answer = await held[-1].request("GET", f"/api/stream/room{i}")
                    assert answer.status == (200 if i < fds.streams else 503), i
                assert answer.json()["message"].startswith("too many open streams")

                # More connections (each a refused stream, kept alive) until one is refused: the
                # cap, below the limit (without it they would stall once accept() fails).
                for _ in range(LIMIT):
                    connection = await Connection.open(base)
                    answer = await connection.request("GET", "/api/stream/more")
                    if answer.json() == FULL:
                        assert await connection.closed_by_server()
                        connection.close()
                        break
                    held.append(connection)
                assert len(held) == fds.http_connections

                # At the cap: each of these is answered 503 and closed in order, none reset.
                for method, path, body in REQUESTS:
                    answer, closed = await once(base, method, path, body)
                    assert (answer.status, answer.json(), closed) == (503, FULL, True), path
                burst = await asyncio.gather(*(once(base, "GET", "/healthz") for _ in range(30)))
                assert all(a.status == 503 and closed for a, closed in burst)
                async with httpx.AsyncClient(timeout=10) as client:  # as a user's client sees it
                    assert (await client.get(f"{base}/healthz")).status_code == 503

                # gRPC keeps its own connections: a post goes through, a stream is refused.
                posted = await stub.PostToRoom(pb.Message(userId="ann", roomId="g", text="still here"))
                assert posted.success
                call = stub.StreamRoom(pb.RoomRequest(roomId="g"))
                try:
                    await call.read()
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                else:
                    raise AssertionError("a stream opened past --max-streams")
        finally:
            for connection in held:
                connection.close()

        # Once they are closed, everything works again.
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(100):  # the server hears of the closes over the network
                health = await client.get("/healthz")
                if health.status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert health.json() == {"status": "ok", "backend": "ok"}
            posted = await client.post("/api/room/r", json={"userId": "ann", "text": "back"})
            assert posted.status_code == 201
            async with client.stream("GET", "/api/stream/r") as stream:
                assert stream.status_code == 200
            metrics = (await client.get("/metrics")).text
        assert f"roomchat_http_connections_limit {float(fds.http_connections)}" in metrics
        refused = re.search(r"^roomchat_http_connections_refused_total (\S+)$", metrics, re.MULTILINE)
        assert refused is not None and float(refused[1]) >= len(REQUESTS) + 30
        assert server.terminate() == 0
        assert server.proc.stderr is not None
        log = server.proc.stderr.read()
        assert f"open-file limit {LIMIT}: room for {fds.streams} streams" in log
        assert "new ones are answered 503" in log
        assert "Traceback" not in log and "accept" not in log
