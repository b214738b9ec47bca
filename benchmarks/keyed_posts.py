"""What an idempotency key costs a post: server CPU per post, keyed vs not.

    python benchmarks/keyed_posts.py [--backend redis://127.0.0.1:6379/0] [--posts 3000]

Starts `roomchat serve --adapter rest`, posts over one kept-alive connection,
alternating unkeyed and keyed phases, and reads the server's CPU time around
each phase (psutil), so other load on the machine counts less than wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
import psutil

from roomchat.bench.runner import serve_process


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="memory")
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.backend, args.posts, args.rounds))
