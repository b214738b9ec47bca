"""What the publish hook costs a post: posts/s and post latency, hook on against off.

    python benchmarks/publish_hook.py [--posts 2000] [--concurrency 1,16] [--rounds 3]

Starts a receiver that answers `{"allow": true}` at once (uvicorn in its own
process, on 127.0.0.1), then, alternating, `roomchat serve --adapter rest` without
and with `--publish-hook` pointed at it, and posts `--posts` messages over kept-alive
connections at each concurrency. Reports posts/s, p50 and p99 per phase, and the
medians over the rounds; the difference is the hook's round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx

from roomchat.bench.runner import serve_process

SECRET = "benchmark-secret"
RECEIVER = """
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


async def hook(request):
    await request.body()
    return Response(b'{"allow":true}', media_type="application/json")

uvicorn.run(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), host="127.0.0.1",
            port=int(__import__("sys").argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def phase(base: str, posts: int, concurrency: int) -> tuple[float, float, float]:
    """posts/s, p50 ms, p99 ms."""
    latencies: list[float] = []
    per_worker = posts // concurrency
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker(index: int) -> None:
            for i in range(per_worker):
                started = time.perf_counter()
                body = {"userId": "ann", "text": f"m{i}"}
                answer = await client.post(f"/api/room/bench-{index}", json=body)
                latencies.append(time.perf_counter() - started)
                assert answer.status_code == 201, answer.text

        await worker(0)  # warm: connections made, the hook's client made
        latencies.clear()
        wall = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall = time.perf_counter() - wall
    latencies.sort()
    return (
        len(latencies) / wall,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.99)] * 1000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    hook = f"http://127.0.0.1:{port}/hook"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
        results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        variants = {"off": (), "hook": ("--publish-hook", hook, "--webhook-secret", SECRET)}
        for _ in range(args.rounds):
            for name, extra in variants.items():
                with serve_process(("rest",), extra) as (urls, _pid):
                    for concurrency in (int(c) for c in args.concurrency.split(",")):
                        figures = asyncio.run(phase(urls["rest"], args.posts, concurrency))
                        results.setdefault((name, concurrency), []).append(figures)
                        print(f"{name:5} c={concurrency:<3} {figures[0]:8.0f} posts/s  "
                              f"p50 {figures[1]:6.2f} ms  p99 {figures[2]:6.2f} ms", flush=True)
        print("medians:")
        for (name, concurrency), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            rate, p50, p99 = (statistics.median(r[i] for r in runs) for i in range(3))
            print(f"{name:5} c={concurrency:<3} {rate:8.0f} posts/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    finally:
        receiver.terminate()
        receiver.wait()


if __name__ == "__main__":
    main()
