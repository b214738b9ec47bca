"""Streams under load: slow listeners, cut connections, lag — against real servers."""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import time

import httpx

from roomchat.bootstrap import ServiceSettings
from tests.support import RawStream, roomchat_process, serve, stream


async def test_a_listener_that_stops_reading_does_not_delay_another() -> None:
    with roomchat_process("--adapter", "rest", "--port", "rest=0", "--buffer", "64") as server:
        base = server.urls["rest"]
        host, port = base.removeprefix("http://").split(":")
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
        stalled.connect((host, int(port)))
        stalled.sendall(b"GET /api/stream/busy HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads
        latencies: list[float] = []
        count = 5000
        padding = "p" * 1000
        async with httpx.AsyncClient(timeout=10) as client:
            async with stream(client, f"{base}/api/stream/busy") as sse:

                async def read() -> list[str]:
                    texts = []
                    for _ in range(count):
                        [ev] = await sse.messages(1, timeout=20)
                        text = ev.json()["text"]
                        latencies.append((time.monotonic_ns() - int(text.split(":")[0])) / 1e6)
                        texts.append(text)
                    return texts

                reader = asyncio.ensure_future(read())
                posted = []
                for _ in range(count):
                    text = f"{time.monotonic_ns()}:{padding}"
                    r = await client.post(f"{base}/api/room/busy", json={"userId": "load", "text": text})
                    assert r.status_code == 201
                    posted.append(text)
                assert await asyncio.wait_for(reader, 20) == posted
            metrics = (await client.get(f"{base}/metrics")).text
        stalled.close()
        p99 = statistics.quantiles(latencies, n=100)[98]
        assert p99 < 100, f"p99 {p99:.1f} ms for the listener that reads"
        assert "roomchat_listeners_lagged_total 1.0" in metrics  # the stalled one was dropped


async def test_a_listener_cut_at_random_points_resumes_every_message_once_in_order() -> None:
    rng = random.Random(2026)
    async with serve("rest") as server, httpx.AsyncClient(timeout=10) as client:
        base = server.url()
        posted: list[str] = []
        done = asyncio.Event()

        async def post_all() -> None:
            for i in range(600):
                r = await client.post(f"{base}/api/room/cut", json={"userId": "p", "text": f"m{i}"})
                posted.append(r.json()["message"]["id"])
                if i % 50 == 0:
                    await asyncio.sleep(0)
            done.set()

        poster = asyncio.ensure_future(post_all())
        received: list[str] = []
        last_id: str | None = None
        cuts = 0
        while not (done.is_set() and len(received) >= len(posted)):
            conn = await RawStream.open(base, "/api/stream/cut", last_id)
            budget = rng.randint(1, 3000)
            try:
                events = await asyncio.wait_for(conn.events(budget), 0.5)
            except TimeoutError:
                events = []  # idle: nothing more for now
            conn.cut()
            cuts += 1
            for ev in events:
                if ev.event == "message":
                    assert ev.id is not None
                    received.append(ev.id)
                    last_id = ev.id
            assert cuts < 5000
        await poster
        assert received == posted
        assert cuts > 10


async def test_a_slow_listener_gets_lagged_and_resumes_without_loss() -> None:
    async with serve("rest", service_settings=ServiceSettings(buffer=16)) as server:
        base = server.url()
        async with httpx.AsyncClient(timeout=10) as client:
            conn = await RawStream.open(base, "/api/stream/slow")
            await conn.chunk()  # ": connected"
            ids = []
            while server.service.stats().lagged == 0:  # it stops reading: fill its buffers
                r = await client.post(f"{base}/api/room/slow", json={"userId": "a", "text": "x" * 4000})
                ids.append(r.json()["message"]["id"])
                assert len(ids) < 20000
            events = await asyncio.wait_for(conn.events(), 10)  # now read what it was sent
            lagged = events[-1]
            assert lagged.event == "lagged"
            got = [ev.id for ev in events[:-1]]
            assert got == ids[: len(got)]
            resume_from = lagged.json()["lastEventId"]
            assert resume_from == (got[-1] if got else None)
            async with stream(client, f"{base}/api/stream/slow", {"Last-Event-ID": resume_from or ""}) as sse:
                rest = await sse.messages(len(ids) - len(got))
                assert got + [e.id for e in rest] == ids
