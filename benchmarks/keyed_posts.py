"""What an idempotency key costs a post: CPU per post, keyed vs not.

    python benchmarks/keyed_posts.py --in-process [--posts 2000] [--rounds 15]
    python benchmarks/keyed_posts.py [--backend redis://127.0.0.1:6379/0] [--posts 3000]

`--in-process` posts through the room service (`RoomService.submit_once`) over
the memory backend in this process, alternating unkeyed and keyed phases of
the same room, and reads this process's CPU time around each phase: the cost
of the key alone, without HTTP. Keys and texts are made before each phase.

Without it, it starts `roomchat serve --adapter rest`, posts over one
kept-alive connection, alternating unkeyed and keyed phases, and reads the
server's CPU time around each phase (psutil), so other load on the machine
counts less than wall time; there the key's few µs are within the noise of
an HTTP post.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
import psutil

from roomchat.backends.memory import MemoryBackend
from roomchat.bench.runner import serve_process
from roomchat.core import RoomService


async def phase(
    client: httpx.AsyncClient, server: psutil.Process, posts: int, keyed: str | None
) -> tuple[float, float]:
    """Server CPU and wall time per post, in µs."""
    cpu0 = sum(server.cpu_times()[:2])
    wall0 = time.perf_counter()
    for i in range(posts):
        headers = {"idempotency-key": f"{keyed}-{i}"} if keyed else None
        r = await client.post("/api/room/keyed", json={"userId": "ann", "text": f"post {i}"}, headers=headers)
        assert r.status_code == 201, r.text
    wall = time.perf_counter() - wall0
    return (sum(server.cpu_times()[:2]) - cpu0) / posts * 1e6, wall / posts * 1e6


async def main(backend: str, posts: int, rounds: int) -> None:
    with serve_process(("rest",), ("--backend", backend)) as (urls, pid):
        server = psutil.Process(pid)
        async with httpx.AsyncClient(base_url=urls["rest"]) as client:
            await phase(client, server, 200, None)  # warm up
            for n in range(rounds):
                for keyed in (None, f"round{n}"):
                    cpu, wall = await phase(client, server, posts, keyed)
                    label = "keyed  " if keyed else "unkeyed"
                    print(f"{backend} {label} server CPU {cpu:7.1f} µs/post, wall {wall:7.1f} µs/post")


async def service_phase(service: RoomService, posts: int, keyed: str | None) -> float:
    """CPU per post through the room service, in µs."""
    texts = [f"post {i}" for i in range(posts)]
    keys = [f"{keyed}-{i}" if keyed else None for i in range(posts)]
    cpu0 = time.process_time()
    for text, key in zip(texts, keys, strict=True):
        await service.submit_once("keyed", "ann", text, key=key)
    return (time.process_time() - cpu0) / posts * 1e6


async def in_process(posts: int, rounds: int) -> None:
    service = RoomService(MemoryBackend())
    await service.start()
    await service_phase(service, 2000, None)  # warm up, and fill the room's history
    await service_phase(service, 2000, "warm")
    figures: dict[str, list[float]] = {"unkeyed": [], "keyed": []}
    for n in range(rounds):
        figures["unkeyed"].append(await service_phase(service, posts, None))
        figures["keyed"].append(await service_phase(service, posts, f"round{n}"))
    for label, values in figures.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"memory in-process {label:7} CPU median {statistics.median(values):5.2f} µs/post ({shown})")
    ratio = statistics.median(figures["keyed"]) / statistics.median(figures["unkeyed"])
    print(f"keyed / unkeyed: {ratio:.2f}")
    await service.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="memory")
    parser.add_argument("--in-process", action="store_true", help="through the room service, memory backend")
    parser.add_argument("--posts", type=int)
    parser.add_argument("--rounds", type=int)
    args = parser.parse_args()
    if args.in_process:
        asyncio.run(in_process(args.posts or 2000, args.rounds or 15))
    else:
        asyncio.run(main(args.backend, args.posts or 3000, args.rounds or 3))
