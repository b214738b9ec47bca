"""Presence on the Redis backend: writes per heartbeat, and Redis memory per present user.

Starts its own redis-server and one `roomchat serve --adapter rest` on it,
opens named SSE listeners in several rooms, then counts the presence commands
Redis runs over a number of heartbeats (`INFO commandstats`) and measures the
presence hashes (`MEMORY USAGE`).

Usage: .venv/bin/python benchmarks/presence_redis.py [--rooms 20] [--users 50] [--heartbeat 1] [--beats 10]
About 15 s with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from redis.asyncio import Redis

from benchmarks.cross_process import redis_server
from roomchat.bench.runner import serve_process


async def _listen(host: str, port: int, path: str) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head, head
    return writer


async def _calls(redis: Redis, command: str) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


async def measure(url: str, base: str, rooms: int, users: int, heartbeat: float, beats: int) -> None:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    writers = []
    for r in range(rooms):
        for u in range(users):
            writers.append(await _listen(host, int(port), f"/api/stream/room{r}?userId=user{u:04d}"))
    async with Redis.from_url(url, decode_responses=True) as redis:
        while len(await redis.keys("roomchat:presence:*")) < rooms:
            await asyncio.sleep(0.1)
        await asyncio.sleep(2 * heartbeat)  # the joins' own writes are done
        before = {c: await _calls(redis, c) for c in ("evalsha", "hset", "publish")}
        started = time.monotonic()
        await asyncio.sleep(beats * heartbeat)
        after = {c: await _calls(redis, c) for c in ("evalsha", "hset", "publish")}
        elapsed_beats = (time.monotonic() - started) / heartbeat
        sizes = [await redis.memory_usage(f"roomchat:presence:room{r}") or 0 for r in range(rooms)]
    for writer in writers:
        writer.close()
    print(f"{rooms} rooms x {users} named listeners on one process, heartbeat {heartbeat:g} s")
    for command in before:
        per_beat = (after[command] - before[command]) / elapsed_beats
        print(f"  {command:<8} {per_beat:8.1f} per heartbeat")
    per_room = sum(sizes) / rooms
    print(f"  presence hash: {per_room:,.0f} B per room, {per_room / users:,.1f} B per present user")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--beats", type=int, default=10)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(redis_server())
        extra = ("--backend", url, "--presence-heartbeat", str(args.heartbeat))
        urls, _ = stack.enter_context(serve_process(("rest",), extra))
        asyncio.run(measure(url, urls["rest"], args.rooms, args.users, args.heartbeat, args.beats))


if __name__ == "__main__":
    main()
