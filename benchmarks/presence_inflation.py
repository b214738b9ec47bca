"""Presence inflation (issue 24, item 6), before and after, in one run.

`python benchmarks/presence_inflation.py [--base /work/base] [--names 5000] [--rounds 2]`

For each tree (the base checkout, then this one, alternating), starts
`roomchat serve --adapter rest --adapter grpc` from that tree, opens `--names`
named gRPC streams over 10 connections from 127.0.0.1 (this tree: with
`--max-names-per-ip 0`, as if they came from many IPs, the worst case the
paging must hold), then asks `GET /api/room/r/presence` 20 times while a second
client asks `/healthz` every 10 ms. Prints, per run: the presence answer's size,
the slowest and median presence answer, the worst /healthz wait (the loop's
longest stall as another client sees it), the server's RSS, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx

HERE = Path(__file__).resolve().parent.parent
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
sys.path.insert(0, str(HERE))

from roomchat.adapters.grpc.generated import message_pb2 as pb  # noqa: E402
from roomchat.adapters.grpc.generated import message_pb2_grpc as pb_grpc  # noqa: E402


def start(tree: Path, extra: list[str]) -> tuple[subprocess.Popen[str], dict[str, str]]:
    args = [sys.executable, "-m", "roomchat", "serve", "--log-level", "warning", "--adapter", "rest",
            "--adapter", "grpc", "--port", "rest=0", "--port", "grpc=0", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(
        args, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    while len(urls) < 2:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"roomchat serve from {tree} exited")
        head, sep, url = line.strip().partition(" listening on ")
        if sep:
            urls[head.removeprefix("roomchat: ")] = url
    return proc, urls


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(tree: Path, names: int, extra: list[str]) -> dict[str, float]:
    proc, urls = start(tree, extra)
    try:
        target = urls["grpc"].removeprefix("grpc://")
        own = [("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.aio.insecure_channel(target, options=own) for _ in range(10)]
        stubs = [pb_grpc.RoomStub(c) for c in channels]
        calls = [
            stubs[i % 10].StreamRoom(pb.RoomRequest(roomId="r", userId=f"made-up-{i:05}"))
            for i in range(names)
        ]
        await asyncio.gather(*(c.wait_for_connection() for c in calls), return_exceptions=True)
        base = urls["rest"]
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(100):  # until every stream is counted
                if (await client.get("/api/room/r")).json()["listeners"] >= names:
                    break
                await asyncio.sleep(0.1)
            rss_before = rss_mib(proc.pid)
            waits: list[float] = []
            done = asyncio.Event()

            async def probe() -> None:
                async with httpx.AsyncClient(base_url=base, timeout=30) as other:
                    while not done.is_set():
                        sent = time.monotonic()
                        await other.get("/healthz")
                        waits.append(time.monotonic() - sent)
                        await asyncio.sleep(0.01)

            task = asyncio.ensure_future(probe())
            took, size = [], 0
            for _ in range(20):
                sent = time.monotonic()
                r = await client.get("/api/room/r/presence")
                took.append(time.monotonic() - sent)
                size = len(r.content)
            done.set()
            await task
            rss_after = rss_mib(proc.pid)
        # Closing the connections ends the calls; cancelling 500 a connection would be a "rapid reset".
        await asyncio.gather(*(c.close() for c in channels))
        return {
            "bytes": size,
            "presence_max_ms": max(took) * 1000,
            "presence_p50_ms": statistics.median(took) * 1000,
            "worst_stall_ms": max(waits) * 1000,
            "rss_mib": rss_after,
            "rss_before_mib": rss_before,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=Path("/work/base"))
    parser.add_argument("--names", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    for _ in range(options.rounds):
        for label, tree, extra in (("base", options.base, []), ("this", HERE, ["--max-names-per-ip", "0"])):
            got = asyncio.run(measure(tree, options.names, extra))
            load = os.getloadavg()
            print(
                f"{label}: {options.names} names; presence answer {got['bytes'] / 1024:.1f} KiB,"
                f" p50 {got['presence_p50_ms']:.1f} ms, max {got['presence_max_ms']:.1f} ms;"
                f" worst /healthz {got['worst_stall_ms']:.1f} ms;"
                f" RSS {got['rss_before_mib']:.0f} -> {got['rss_mib']:.0f} MiB;"
                f" load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
