"""Several `roomchat serve` processes sharing one redis-server of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
from redis.asyncio import Redis

from roomchat.bootstrap import ServiceSettings
from roomchat.core.message import id_key
from tests.backends.redis_server import RedisServer, free_port, redis_server
from tests.support import SSE, roomchat_process, serve, stream


@contextlib.contextmanager
def processes(url: str, count: int = 2) -> Iterator[list[str]]:
    """`count` REST processes on one Redis; yields their base URLs."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                roomchat_process("--adapter", "rest", "--port", "rest=0", "--backend", url)
            ).urls["rest"]
            for _ in range(count)
        ]


async def post(client: httpx.AsyncClient, base: str, room: str, text: str) -> dict[str, str]:
    r = await client.post(f"{base}/api/room/{room}", json={"userId": "ann", "text": text})
    assert r.status_code == 201, r.text
    message: dict[str, str] = r.json()["message"]
    return message


async def ids_of(sse: SSE, count: int) -> list[str]:
    return [str(ev.id) for ev in await sse.messages(count)]


async def test_messages_reach_listeners_on_every_process_once_in_one_order(
    redis: RedisServer, client: httpx.AsyncClient
) -> None:
    with processes(redis.url) as (a, b):
        async with (
            stream(client, f"{a}/api/stream/lobby") as on_a,
            stream(client, f"{b}/api/stream/lobby") as on_b,
        ):
            # Two writers, one per process, interleaving at random: 200 messages in all.
            async def writer(base: str, tag: str) -> list[str]:
                ids = []
                for i in range(100):
                    ids.append((await post(client, base, "lobby", f"{tag}{i}"))["id"])
                    if random.random() < 0.3:
                        await asyncio.sleep(0)
                return ids

            from_a, from_b = await asyncio.gather(writer(a, "a"), writer(b, "b"))
            seen_a, seen_b = await asyncio.gather(ids_of(on_a, 200), ids_of(on_b, 200))
        assert seen_a == seen_b
        assert len(set(seen_a)) == 200 and set(seen_a) == set(from_a) | set(from_b)
        keys = [id_key(i) for i in seen_a]
        assert keys == sorted(keys)  # the order of the room, the same everywhere
        page = (await client.get(f"{b}/api/room/lobby/messages", params={"limit": 200})).json()
        assert [m["id"] for m in page["messages"]] == seen_a


async def test_a_listener_moving_to_another_process_loses_nothing(
    redis: RedisServer, client: httpx.AsyncClient
) -> None:
    with processes(redis.url) as (a, b):
        async with stream(client, f"{a}/api/stream/r") as on_a:
            first = [(await post(client, b, "r", f"m{i}"))["id"] for i in range(5)]
            assert await ids_of(on_a, 5) == first
        missed = [(await post(client, a if i % 2 else b, "r", f"n{i}"))["id"] for i in range(5)]
        async with stream(client, f"{b}/api/stream/r", headers={"Last-Event-ID": first[-1]}) as on_b:
            assert await ids_of(on_b, 5) == missed
            live = await post(client, a, "r", "live")
            assert await ids_of(on_b, 1) == [live["id"]]
        rooms = (await client.get(f"{a}/api/rooms")).json()["rooms"]
        assert [(r["roomId"], r["lastId"]) for r in rooms] == [("r", live["id"])]


async def test_delete_on_one_process_ends_streams_on_another(
    redis: RedisServer, client: httpx.AsyncClient
) -> None:
    with processes(redis.url) as (a, b):
        async with stream(client, f"{b}/api/stream/doomed") as on_b:
            await post(client, a, "doomed", "hello")
            assert len(await ids_of(on_b, 1)) == 1
            assert (await client.delete(f"{a}/api/room/doomed")).json() == {"success": True}
            ev = await on_b.next()
            assert ev is not None and ev.event == "deleted" and ev.json() == {"roomId": "doomed"}
            assert await on_b.next() is None  # the stream ended
        page = (await client.get(f"{b}/api/room/doomed/messages")).json()
        assert page == {"messages": []}
        assert (await client.get(f"{b}/api/rooms")).json() == {"rooms": [], "next": None}


async def until_ok(client: httpx.AsyncClient, request: httpx.Request, deadline: float) -> httpx.Response:
    while True:
        with contextlib.suppress(httpx.TransportError):
            r = await client.send(request)
            if r.status_code < 500:
                return r
        assert time.monotonic() < deadline, "not back in time"
        await asyncio.sleep(0.05)


async def test_redis_restart_errors_clearly_then_resumes_without_loss(
    tmp_path: Path, client: httpx.AsyncClient
) -> None:
    with redis_server(tmp_path, durable=True) as redis, processes(redis.url) as (a, b):
        acknowledged: list[str] = []
        async with stream(client, f"{a}/api/stream/r") as on_a, stream(client, f"{b}/api/stream/r") as on_b:
            for i in range(5):
                acknowledged.append((await post(client, a if i % 2 else b, "r", f"m{i}"))["id"])
            last_a = (await ids_of(on_a, 5))[-1]
            last_b = (await ids_of(on_b, 5))[-1]
            redis.kill()
            # Streams end (no `deleted`), so that clients resume with their last id.
            assert await on_a.next() is None and await on_b.next() is None
        r = await client.post(f"{a}/api/room/r", json={"userId": "ann", "text": "lost"})
        assert r.status_code == 503
        assert r.json()["code"] == 503 and "Redis" in r.json()["message"]
        assert (await client.get(f"{b}/healthz")).status_code == 503
        reopened = await client.get(f"{b}/api/stream/r")
        assert reopened.status_code == 503 and reopened.json()["code"] == 503
        assert (await client.get(f"{a}/api/room/r/messages")).status_code == 503

        redis.start()
        deadline = time.monotonic() + 10
        body = {"userId": "ann", "text": "back"}
        for base in (a, b):
            await until_ok(client, client.build_request("GET", f"{base}/healthz"), deadline)
        r = await until_ok(client, client.build_request("POST", f"{a}/api/room/r", json=body), deadline)
        assert r.status_code == 201
        acknowledged.append(r.json()["message"]["id"])
        acknowledged.append((await post(client, b, "r", "again"))["id"])
        async with (
            stream(client, f"{a}/api/stream/r", {"Last-Event-ID": last_a}) as on_a,
            stream(client, f"{b}/api/stream/r", {"Last-Event-ID": last_b}) as on_b,
        ):
            assert await ids_of(on_a, 2) == acknowledged[5:]
            assert await ids_of(on_b, 2) == acknowledged[5:]
            live = await post(client, b, "r", "live")
            assert await ids_of(on_a, 1) == [live["id"]] == await ids_of(on_b, 1)
        assert time.monotonic() < deadline
        page = (await client.get(f"{a}/api/room/r/messages")).json()["messages"]
        assert [m["id"] for m in page] == [*acknowledged, live["id"]]  # every 201 kept


@contextlib.asynccontextmanager
async def in_process(url: str) -> AsyncIterator[str]:
    async with serve("rest", service_settings=ServiceSettings(backend=url)) as server:
        yield server.url()


async def test_streams_opened_while_redis_is_down_answer_503(
    redis: RedisServer, client: httpx.AsyncClient
) -> None:
    async with in_process(redis.url) as base:
        assert (await client.get(f"{base}/healthz")).status_code == 200
        redis.kill()
        for path in ("/api/stream/r", "/api/rooms", "/api/room/r", "/healthz", "/readyz"):
            r = await client.get(f"{base}{path}")
            assert r.status_code == 503, path
            assert r.headers["content-type"] == "application/json", path
        r = await client.delete(f"{base}/api/room/r")
        assert r.status_code == 503 and "unreachable" in r.json()["message"]


async def test_one_reader_per_process_however_many_listeners_and_rooms(
    redis: RedisServer, client: httpx.AsyncClient
) -> None:
    rooms = [f"room{i}" for i in range(5)]
    async with in_process(redis.url) as base, contextlib.AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(stream(client, f"{base}/api/stream/{room}"))
            for room in rooms
            for _ in range(4)
        ]
        for room in rooms:
            await post(client, base, room, f"to {room}")
        for index, sse in enumerate(streams):
            [ev] = await sse.messages(1)
            assert ev.json()["text"] == f"to {rooms[index // 4]}"
        probe = Redis(port=redis.port, decode_responses=True)
        try:
            clients = await probe.client_list()
        finally:
            await probe.aclose()
        readers = [c for c in clients if c["cmd"] == "xread"]
        assert len(readers) == 1, clients  # one blocking XREAD for 20 listeners in 5 rooms
        assert len(clients) <= 5, clients  # reader, pub/sub, a few pooled commands, and the probe


def test_serve_with_redis_unreachable_fails_with_one_clear_line() -> None:
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "roomchat",
            "serve",
            "--adapter",
            "rest",
            "--port",
            "rest=0",
            "--backend",
            f"redis://127.0.0.1:{port}/0",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"roomchat: error: cannot reach Redis at 127.0.0.1:{port}/0: ")
    assert "refused" in line.lower()
    assert "listening" not in done.stdout
