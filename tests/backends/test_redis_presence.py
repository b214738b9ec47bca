"""Presence across `roomchat serve` processes on one redis-server of the test's own.

The heartbeat is short (`--presence-heartbeat`) so that expiry is seconds, not 20.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
from redis.asyncio import Redis

from tests.backends.redis_server import RedisServer
from tests.support import SSE, Event, Process, roomchat_process, stream

HEARTBEAT = 0.4
EXPIRY = 3 * HEARTBEAT  # three heartbeats, as the core counts them


@contextlib.contextmanager
def processes(url: str, count: int = 2) -> Iterator[list[Process]]:
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                roomchat_process(
                    "--adapter",
                    "rest",
                    "--port",
                    "rest=0",
                    "--backend",
                    url,
                    "--presence-heartbeat",
                    str(HEARTBEAT),
                )
            )
            for _ in range(count)
        ]


async def presence_event(sse: SSE, timeout: float = 10.0) -> dict[str, object]:
    ev = await sse.next(timeout)
    assert isinstance(ev, Event) and ev.event == "presence", ev
    data: dict[str, object] = ev.json()
    return data


async def until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> bool:
    """Polled: another process's part shows up at its next tick, which no client sees."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def presence_of(client: httpx.AsyncClient, base: str, room: str) -> dict[str, object]:
    found: dict[str, object] = (await client.get(f"{base}/api/room/{room}/presence")).json()
    return found


async def changes(watcher: SSE, key: str, users: set[str]) -> None:
    """Events until every one of `users` is in their `key` ("joined" or "left"); nothing in the other."""
    other = "left" if key == "joined" else "joined"
    seen: set[str] = set()
    while seen != users:  # one event or two, as the windows of each process fall
        event = await presence_event(watcher)
        assert event[other] == [], event
        seen |= set(event[key])  # type: ignore[call-overload]


def connections(found: dict[str, object]) -> list[tuple[str, int]]:
    users = found["users"]
    assert isinstance(users, list)
    return [(u["userId"], u["connections"]) for u in users]


async def test_users_on_two_processes_one_of_them_on_both(
    redis: RedisServer, client: httpx.AsyncClient
) -> None:
    with processes(redis.url) as (a, b):
        on_a, on_b = a.urls["rest"], b.urls["rest"]
        async with (
            stream(client, f"{on_a}/api/stream/lobby?presence=1") as watch_a,
            stream(client, f"{on_b}/api/stream/lobby?presence=1") as watch_b,
        ):
            async with (
                stream(client, f"{on_a}/api/stream/lobby?userId=ann"),
                stream(client, f"{on_b}/api/stream/lobby?userId=bob"),
                stream(client, f"{on_a}/api/stream/lobby?userId=cat"),
            ):
                async with stream(client, f"{on_b}/api/stream/lobby?userId=cat"):
                    for watcher in (watch_a, watch_b):
                        await changes(watcher, "joined", {"ann", "bob", "cat"})
                    want = [("ann", 1), ("bob", 1), ("cat", 2)]

                    async def both_see_everyone() -> bool:
                        seen = [await presence_of(client, base, "lobby") for base in (on_a, on_b)]
                        return [connections(found) for found in seen] == [want, want]

                    assert await until(both_see_everyone)
                    found = await presence_of(client, on_b, "lobby")
                    assert found["anonymous"] == 2

                    async def listeners_agree() -> bool:
                        infos = [(await client.get(f"{base}/api/room/lobby")).json() for base in (on_a, on_b)]
                        return [info["listeners"] for info in infos] == [6, 6]

                    assert await until(listeners_agree)
                # cat closed on b but is still on a: nobody is told cat left. ann leaving next
                # proves it: the next event on each side is exactly that.
                await asyncio.sleep(3)
                async with stream(client, f"{on_b}/api/stream/lobby?userId=dan"):
                    dan = {"roomId": "lobby", "joined": ["dan"], "left": []}
                    for watcher in (watch_a, watch_b):
                        assert await presence_event(watcher) == dan
            for watcher in (watch_a, watch_b):
                await changes(watcher, "left", {"ann", "bob", "cat", "dan"})
            async with (
                stream(client, f"{on_a}/api/stream/other?userId=eve"),
                Redis.from_url(redis.url) as r,
            ):

                async def shared() -> bool:
                    return await r.exists("roomchat:presence:other") == 1

                assert await until(shared)
                assert a.terminate() == 0  # SIGTERM: eve's part is withdrawn, not left to expire
                assert await r.exists("roomchat:presence:other") == 0


async def test_a_killed_process_s_users_leave_within_a_few_heartbeats(
    redis: RedisServer, client: httpx.AsyncClient
) -> None:
    with processes(redis.url) as (a, b):
        on_a, on_b = a.urls["rest"], b.urls["rest"]
        async with stream(client, f"{on_a}/api/stream/r?presence=1&userId=ann") as watcher:
            assert await presence_event(watcher) == {"roomId": "r", "joined": ["ann"], "left": []}
            async with stream(client, f"{on_b}/api/stream/r?userId=bob"):
                assert await presence_event(watcher) == {"roomId": "r", "joined": ["bob"], "left": []}
                assert (await client.get(f"{on_a}/api/room/r")).json()["listeners"] == 2
                b.proc.kill()  # SIGKILL: nothing withdrawn, nothing said
                killed = time.monotonic()
                gone = await presence_event(watcher, timeout=30)
                assert gone == {"roomId": "r", "joined": [], "left": ["bob"]}
                took = time.monotonic() - killed
        # Expiry, then up to a heartbeat to read it and a window to announce it (plus a shared machine).
        assert took < EXPIRY + HEARTBEAT + 1.0 + 3.0, took
        assert connections(await presence_of(client, on_a, "r")) == []


async def test_presence_lost_by_redis_is_restored_by_the_next_heartbeat(
    redis: RedisServer, client: httpx.AsyncClient
) -> None:
    with processes(redis.url) as (a, b):
        on_a, on_b = a.urls["rest"], b.urls["rest"]

        async def a_sees_bob() -> bool:
            r = await client.get(f"{on_a}/api/room/r/presence")
            return r.status_code == 200 and connections(r.json()) == [("bob", 1)]

        async with stream(client, f"{on_b}/api/stream/r?userId=bob"):
            assert await until(a_sees_bob)
            async with Redis.from_url(redis.url) as r:
                # What a restart without persistence (or a failover to a stale replica) loses:
                await r.delete(*await r.keys("roomchat:presence:*"))
                assert not await a_sees_bob()
                lost = time.monotonic()
                assert await until(a_sees_bob)
                assert time.monotonic() - lost < HEARTBEAT + 3.0
        redis.kill()  # a real restart: streams end, clients come back, nobody is counted twice
        redis.start()
        async with stream(client, f"{on_b}/api/stream/r?userId=bob"):
            assert await until(a_sees_bob, within=20)


async def test_one_write_per_room_per_heartbeat_whatever_the_listeners(
    redis: RedisServer, client: httpx.AsyncClient
) -> None:
    rooms = 10
    with processes(redis.url, 1) as (a,):
        base = a.urls["rest"]
        async with contextlib.AsyncExitStack() as stack:
            for i in range(rooms):
                for user in ("ann", "bob", None):
                    query = f"?userId={user}" if user else ""
                    await stack.enter_async_context(stream(client, f"{base}/api/stream/room{i}{query}"))
            async with Redis.from_url(redis.url, decode_responses=True) as r:

                async def all_shared() -> bool:
                    return len(await r.keys("roomchat:presence:*")) == rooms

                assert await until(all_shared)
                await asyncio.sleep(2 * HEARTBEAT)  # the joins' own writes are done
                before = (await r.info("commandstats")).get("cmdstat_hset", {}).get("calls", 0)
                started = time.monotonic()
                await asyncio.sleep(10 * HEARTBEAT)
                after = (await r.info("commandstats"))["cmdstat_hset"]["calls"]
                beats = (time.monotonic() - started) / HEARTBEAT
        writes_per_beat = (after - before) / beats
        assert rooms * 0.5 <= writes_per_beat <= rooms * 1.5, writes_per_beat
