"""The SSE fast path (writes straight to the socket) and its fallback (plain ASGI `send`)
give a client the same stream; the fast path still notices a hang-up."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from roomchat.adapters.http.sse import EventStream
from roomchat.bootstrap import ServiceSettings, build_service
from tests.support import RawStream, serve


async def test_fast_path_stream_carries_messages_in_order() -> None:
    async with serve("rest") as server, httpx.AsyncClient(base_url=server.url()) as client:
        raw = await RawStream.open(server.url(), "/api/stream/fast")
        # Under uvicorn the stream must take the fast path: a uvicorn upgrade that
        # quietly drops it to plain ASGI should fail here, not only in a benchmark.
        listeners = list(server.service._rooms["fast"].listeners)
        assert [listener.notify is not None for listener in listeners] == [True]
        for i in range(3):
            posted = await client.post("/api/room/fast", json={"userId": "u", "text": f"m{i}"})
            assert posted.status_code == 201
        events = []
        while len(events) < 3:
            events += [e for e in await raw.events(budget=1) if e.event == "message"]
        assert [e.json()["text"] for e in events] == ["m0", "m1", "m2"]
        assert [e.id for e in events] == [e.json()["id"] for e in events]
        raw.cut()


async def test_fast_path_notices_a_client_hanging_up() -> None:
    async with serve("rest") as server, httpx.AsyncClient(base_url=server.url()) as client:
        raw = await RawStream.open(server.url(), "/api/stream/hangup")
        assert (await client.get("/api/room/hangup")).json()["listeners"] == 1
        raw.cut()
        # The server learns of it through uvicorn, well before any keepalive timer.
        assert await server.listeners_become("hangup", 0, within=2)
        assert (await client.get("/api/room/hangup")).json()["listeners"] == 0


async def test_without_the_server_s_own_send_the_stream_uses_plain_asgi() -> None:
    service = build_service(ServiceSettings())
    await service.start()
    sent: list[dict[str, Any]] = []
    got_message = asyncio.Event()
    started = asyncio.Event()
    disconnect = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        started.set()
        if b"event: message" in message.get("body", b""):
            got_message.set()

    async def receive() -> dict[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "headers": []}
    stream = asyncio.ensure_future(EventStream(service, "plain", None, "sse", 15.0)(scope, receive, send))
    await asyncio.wait_for(started.wait(), 5)
    await service.submit("plain", "u", "hello")
    await asyncio.wait_for(got_message.wait(), 5)
    disconnect.set()
    await asyncio.wait_for(stream, 5)
    bodies = b"".join(m.get("body", b"") for m in sent[1:])
    assert sent[0]["status"] == 200
    assert b'"text":"hello"' in bodies
    await service.close()
