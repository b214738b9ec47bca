"""--history-bytes through the command line: past it the oldest messages of the least
recently active room go first, and resuming from one of them gives `gap`."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable

import httpx
import psutil
import pytest
import websockets
from websockets import Subprotocol

from roomchat.adapters.grpc.generated import message_pb2 as pb
from tests.adapters.grpc.client import room_stub
from tests.support import roomchat_process, stream
from tests.ws_client import ws_url


async def post(client: httpx.AsyncClient, room: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        answer = await client.post(f"/api/room/{room}", json={"userId": "u", "text": "x" * 1000})
        assert answer.status_code == 201
        ids.append(answer.json()["message"]["id"])
    return ids


async def kept(client: httpx.AsyncClient, room: str) -> list[str]:
    return [m["id"] for m in (await client.get(f"/api/room/{room}/messages?limit=1000")).json()["messages"]]


async def test_past_history_bytes_the_least_recently_active_room_loses_its_oldest_first() -> None:
    # 48 KiB holds 15 1000-character texts (each counted with the memory it takes: about 3.1 KB).
    with roomchat_process("--adapter", "rest", "--port", "rest=0", "--history-bytes", "48KiB") as server:
        base = server.urls["rest"]
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            old = await post(client, "old", 12)
            assert await kept(client, "old") == old  # within the budget so far
            new = await post(client, "new", 8)  # now past it
            kept_old = await kept(client, "old")
            assert 0 < len(kept_old) < len(old)
            assert kept_old == old[len(old) - len(kept_old) :]  # its oldest went, the rest in order
            assert await kept(client, "new") == new  # the active room kept all

            async with stream(client, f"{base}/api/stream/old", {"Last-Event-ID": old[0]}) as events:
                gap = await events.next()
                assert gap is not None and gap.event == "gap"
                assert gap.json() == {"lastEventId": old[0], "oldestId": kept_old[0]}
        assert server.terminate() == 0


CAP_MIB = 8


@pytest.mark.slow
@pytest.mark.parametrize(
    "char", ["x", "\u4f60", "\U0001f600"], ids=["ascii", "2-byte", "4-byte"]
)
async def test_history_bytes_holds_rss_with_every_transport_listening(char: str) -> None:
    """The cap against the server's RSS, with an SSE, a WebSocket and a gRPC listener
    (each wire format's encoding cached on every message) and texts of 1- to 4-byte characters."""
    text = char * 4096
    args = ("--adapter", "rest", "--adapter", "grpc", "--port", "rest=0", "--port", "grpc=0")
    args += ("--history", "100000", "--history-bytes", f"{CAP_MIB}MiB")
    with roomchat_process(*args, expect=2) as server:
        rest, process = server.urls["rest"], psutil.Process(server.proc.pid)
        async with _listeners(server.urls) as received, httpx.AsyncClient(base_url=rest, timeout=30) as web:
            await _post_texts(web, text, 30)
            base = process.memory_info().rss
            posted = 0
            # Four times the cap, counted at the mere UTF-8 size of each text once per listener.
            while posted * len(text.encode()) * 4 < 4 * CAP_MIB * 2**20:
                posted += await _post_texts(web, text, 40)
            expected = (posted + 30) * len(text.encode())
            try:
                await _until(lambda: min(received) >= 0.95 * expected)  # the last may wait on a window
            except TimeoutError:
                raise AssertionError(f"listeners got {received} of {expected}") from None
            grown = (process.memory_info().rss - base) / 2**20
        assert server.terminate() == 0
    assert grown < 1.25 * CAP_MIB + 4, f"RSS grew {grown:.0f} MiB past a {CAP_MIB} MiB history cap"


async def _post_texts(client: httpx.AsyncClient, text: str, count: int) -> int:
    async def one() -> None:
        answer = await client.post("/api/room/big", json={"userId": "u", "text": text})
        assert answer.status_code == 201, answer.text

    for _ in range(count // 4):
        await asyncio.gather(*(one() for _ in range(4)))
    return count // 4 * 4


async def _until(condition: Callable[[], bool], within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _listeners(urls: dict[str, str]) -> AsyncIterator[list[int]]:
    """An SSE, a WebSocket and a gRPC listener on room `big`, reading all the while:
    yields the bytes each has received so far."""
    received = [0, 0, 0]

    async def sse() -> None:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client,
            client.stream("GET", urls["rest"] + "/api/stream/big") as answer,
        ):
            async for chunk in answer.aiter_bytes():
                received[0] += len(chunk)

    async def ws() -> None:
        protocol = [Subprotocol("roomchat.v1")]
        async with websockets.connect(ws_url(urls["rest"]), subprotocols=protocol) as conn:
            await conn.send(json.dumps({"type": "subscribe", "roomId": "big"}))
            async for frame in conn:
                received[1] += len(frame.encode() if isinstance(frame, str) else frame)

    async def grpc_stream() -> None:
        async with room_stub(urls["grpc"]) as stub:
            async for message in stub.StreamRoom(pb.RoomRequest(roomId="big")):
                received[2] += len(message.text.encode())

    tasks = [asyncio.ensure_future(reader()) for reader in (sse, ws, grpc_stream)]
    try:
        async with httpx.AsyncClient(base_url=urls["rest"]) as client:
            for _ in range(100):
                if (await client.get("/api/room/big")).json()["listeners"] == 3:
                    break
                await asyncio.sleep(0.05)
        yield received
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
