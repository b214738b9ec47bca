"""What `?wait=1` (WAIT for one replica before acknowledging) costs a post on Redis.

Starts its own redis-server primary and a replica of it (free ports, a
temporary directory, no persistence), and two `roomchat serve --adapter rest`
processes on the primary: one with `redis://…/0`, one with `redis://…/0?wait=1`.
Then it alternates phases between them: `--concurrency` clients post
`--posts` messages in all, each over its own kept-alive connection, and it
reports posts per second and the p50/p99 time to a 201, with the load
average beside each line.

`--in-process` leaves HTTP out: this process posts through two RedisBackend
objects (one with `?wait=1`), one post at a time, alternating short phases
(`--rounds`, default 15, of `--posts`, default 300): what WAIT adds to one
post, with three processes (this one, the primary, the replica) in play
rather than a whole server and its clients.

Usage: .venv/bin/python benchmarks/redis_wait.py [--posts 2000] [--concurrency 8] [--rounds 3]
       .venv/bin/python benchmarks/redis_wait.py --in-process [--posts 300] [--rounds 15]
About 30 s on a quiet machine. The clients run in this one process, on the
same cores as the servers and Redis, so only the ratio of the same run counts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator

import httpx

from roomchat.backends.redis import RedisBackend
from roomchat.bench.runner import free_port, serve_process


@contextlib.contextmanager
def redis_server(directory: str, *args: str) -> Iterator[int]:
    port = free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *args]
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen([server, *options, "--dir", directory], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _answers(port, b"PING\r\n", b"+PONG"):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        yield port
    finally:
        proc.kill()
        proc.wait()


def _answers(port: int, command: bytes, expected: bytes) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5) as sock:
        sock.sendall(command)
        time.sleep(0.01)
        return expected in sock.recv(65536)
    return False


async def phase(bases: list[str], posts: int, tag: str) -> tuple[float, float, float]:
    """Posts per second, p50 and p99 in ms, `bases` posting concurrently."""
    latencies: list[float] = []

    async def poster(base: str, count: int) -> None:
        async with httpx.AsyncClient(base_url=base) as client:
            for i in range(count):
                started = time.perf_counter()
                r = await client.post("/api/room/wait", json={"userId": "ann", "text": f"{tag} {i}"})
                latencies.append(time.perf_counter() - started)
                assert r.status_code == 201, r.text

    wall = time.perf_counter()
    await asyncio.gather(*(poster(base, posts // len(bases)) for base in bases))
    wall = time.perf_counter() - wall
    q = statistics.quantiles(latencies, n=100)
    return len(latencies) / wall, q[49] * 1000, q[98] * 1000


@contextlib.contextmanager
def replicated() -> Iterator[str]:
    """A primary and a synced replica of it; yields the primary's URL."""
    with tempfile.TemporaryDirectory() as directory, redis_server(directory) as primary:
        replica_dir = os.path.join(directory, "replica")
        os.mkdir(replica_dir)
        with redis_server(replica_dir, "--replicaof", "127.0.0.1", str(primary)) as replica:
            deadline = time.monotonic() + 10
            while not _answers(replica, b"INFO replication\r\n", b"master_link_status:up"):
                assert time.monotonic() < deadline, "the replica did not sync"
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{primary}/0"


def report(figures: dict[str, list[tuple[float, float, float]]]) -> None:
    medians = {k: [statistics.median(v[i] for v in rows) for i in range(3)] for k, rows in figures.items()}
    for label, (rate, p50, p99) in medians.items():
        print(f"median {label:8} {rate:7.0f} posts/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    ratio = medians["wait=1"][0] / medians["no wait"][0]
    added = medians["wait=1"][1] - medians["no wait"][1]
    print(f"wait=1 / no wait: posts/s {ratio:.2f}x, p50 {added:+.2f} ms  (load {os.getloadavg()[0]:.2f})")


async def in_process(posts: int, rounds: int) -> None:
    with replicated() as url:
        backends = {"no wait": RedisBackend(url), "wait=1": RedisBackend(url + "?wait=1")}
        for backend in backends.values():
            await backend.start(_Nowhere())
        figures: dict[str, list[tuple[float, float, float]]] = {label: [] for label in backends}
        try:
            for n in range(rounds + 1):
                for label, backend in backends.items():
                    latencies = []
                    wall = time.perf_counter()
                    for i in range(posts):
                        started = time.perf_counter()
                        await backend.publish("wait", "ann", f"{label} {n} {i}")
                        latencies.append(time.perf_counter() - started)
                    wall = time.perf_counter() - wall
                    if n:  # round 0 warms up
                        q = statistics.quantiles(latencies, n=100)
                        figures[label].append((posts / wall, q[49] * 1000, q[98] * 1000))
        finally:
            for backend in backends.values():
                await backend.close()
        report(figures)


class _Nowhere:
    """A sink for a backend that feeds no listener here."""

    def message(self, message: object) -> None: ...
    def deleted(self, room_id: str) -> None: ...
    def interrupted(self, room_id: str) -> None: ...
    def presence_changed(self, room_id: str) -> None: ...


async def main(posts: int, concurrency: int, rounds: int) -> None:
    with (
        replicated() as url,
        serve_process(("rest",), ("--backend", url)) as (plain, _),
        serve_process(("rest",), ("--backend", url + "?wait=1")) as (waiting, _),
    ):
        figures: dict[str, list[tuple[float, float, float]]] = {"no wait": [], "wait=1": []}
        await phase([plain["rest"]] * concurrency, posts // 4, "warm")
        await phase([waiting["rest"]] * concurrency, posts // 4, "warm")
        for n in range(rounds):
            for label, urls in (("no wait", plain), ("wait=1", waiting)):
                result = await phase([urls["rest"]] * concurrency, posts, f"{label} {n}")
                figures[label].append(result)
                load = os.getloadavg()[0]
                print(
                    f"{label:8} {result[0]:7.0f} posts/s  p50 {result[1]:6.2f} ms  "
                    f"p99 {result[2]:6.2f} ms  (load {load:.2f})"
                )
        report(figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--in-process", action="store_true", help="RedisBackend.publish, no HTTP")
    args = parser.parse_args()
    if args.in_process:
        asyncio.run(in_process(args.posts or 300, args.rounds or 15))
    else:
        asyncio.run(main(args.posts or 2000, args.concurrency, args.rounds or 3))
