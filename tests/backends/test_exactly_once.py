"""Exactly once on Redis: posts with idempotency keys in flight while the test's own
redis-server is stopped (SIGSTOP), then retried with the same key until answered.

Redis runs the commands it was sent while stopped once it wakes, after their
clients gave up (503): without keys those retries are duplicates.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from typing import Any

import httpx
import pytest

from roomchat.bootstrap import ServiceSettings
from tests.backends.redis_server import RedisServer
from tests.backends.test_redis_processes import processes
from tests.support import serve
from tests.ws_client import Ws, ws_connect

WRITERS = 4
POSTS = 12  # per writer, at 20 a second
STALL = 3.0  # seconds Redis is stopped: longer than the backend's 2 s command timeout

pytestmark = pytest.mark.slow


async def post_until_answered(
    client: httpx.AsyncClient, bases: list[str], text: str, key: str, statuses: list[int]
) -> dict[str, Any]:
    """Post, and retry with the same key (each time to the next process) until 200 or 201."""
    for attempt in range(100):
        base = bases[attempt % len(bases)]
        try:
            r = await client.post(
                f"{base}/api/room/once",
                json={"userId": "ann", "text": text},
                headers={"idempotency-key": key},
                timeout=10,
            )
        except httpx.TransportError:
            statuses.append(0)
        else:
            statuses.append(r.status_code)
            if r.status_code in (200, 201):
                message: dict[str, Any] = r.json()["message"]
                return message
            assert r.status_code == 503, r.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text} was never answered: {statuses}")


async def through_a_stall(redis: RedisServer, bases: list[str], ws: Ws) -> None:
    await ws.subscribe("once")
    statuses: list[int] = []
    async with httpx.AsyncClient() as client:

        async def writer(w: int) -> list[dict[str, Any]]:
            answered = []
            for i in range(POSTS):
                text, key = f"w{w}-{i}", f"key-{w}-{i}"
                answered.append(await post_until_answered(client, bases, text, key, statuses))
                await asyncio.sleep(0.05)
            return answered

        writers = asyncio.gather(*(writer(w) for w in range(WRITERS)))
        await asyncio.sleep(0.2)
        assert redis.proc is not None
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(STALL)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        answered = [m for one in await writers for m in one]
        # Every post is answered with the message its key first stored, on whichever process.
        assert len({m["id"] for m in answered}) == WRITERS * POSTS
        sentinel = await client.post(f"{bases[0]}/api/room/once", json={"userId": "z", "text": "end"})
        assert sentinel.status_code == 201
        history = await client.get(f"{bases[-1]}/api/room/once/messages", params={"limit": 1000})
    assert 503 in statuses or 0 in statuses, "no post was in flight during the stall"
    assert 200 in statuses, "no retry found its first post stored: the stall did not exercise the keys"
    delivered = await texts_until(ws, "end")
    expected = Counter(f"w{w}-{i}" for w in range(WRITERS) for i in range(POSTS))
    assert Counter(delivered) == expected  # each text reached the listener exactly once
    stored = Counter(m["text"] for m in history.json()["messages"])
    assert stored == expected + Counter(["end"])


async def texts_until(ws: Ws, last: str) -> list[str]:
    """The texts of the room's messages up to `last`, resuming if the feed was lost."""
    texts: list[str] = []
    last_id = None
    while True:
        frame = await ws.next(timeout=20)
        if frame["type"] == "message":
            if frame["message"]["text"] == last:
                return texts
            texts.append(frame["message"]["text"])
            last_id = frame["message"]["id"]
        elif frame["type"] == "error" and frame.get("roomId") == "once" and frame["code"] == 503:
            await ws.send(type="subscribe", roomId="once", lastId=last_id)  # the feed was lost: resume
        else:
            assert frame["type"] == "subscribed", frame


async def test_one_process_stores_each_keyed_post_once_through_a_stall(redis: RedisServer) -> None:
    async with (
        serve("rest", service_settings=ServiceSettings(backend=redis.url)) as server,
        ws_connect(server.url()) as ws,
    ):
        await through_a_stall(redis, [server.url()], ws)


async def test_two_processes_store_each_keyed_post_once_with_retries_to_the_other(
    redis: RedisServer,
) -> None:
    with processes(redis.url) as bases:
        async with ws_connect(bases[1]) as ws:
            await through_a_stall(redis, bases, ws)
