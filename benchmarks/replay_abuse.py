"""Attackers on one server (issue 24, items 2 and 3): the worst loop stall and the server's RSS.

Starts `roomchat serve --adapter rest --adapter grpc` as a subprocess (the code
under `--code DIR`, default this checkout; `--code /work/base` for the "before"),
fills room `big` with 1,000 messages of 4,096 four-byte characters (16 MB of
history), then runs each scenario while a probe process asks `/healthz` every
10 ms on a kept-alive connection (its worst answer is the loop's worst stall,
to within the probe's own 10 ms):

  sse        50 raw-socket SSE resumers of all of `big`'s history that never read
  ws         50 raw-socket WebSocket resumers (subscribe with lastId) that never read
  grpc       3 rounds of 20 raw HTTP/2 StreamRoom resumers with 2 GiB windows and a
             16 MiB frame size that never read; RSS after each round is closed
  ping       one WebSocket sending 6-byte ping frames flat out for 8 s, never reading
  bigping    the same with 125-byte pings (whose pongs are as large)
  jsonping   one WebSocket sending 200,000 {"type":"ping"} frames, never reading

Each line gives the server's RSS before, at its peak (sampled every 50 ms) and
after the attackers closed (after a settling second), and the probe's worst and
99th-percentile answer. Every attacker's socket has a 4 KiB receive buffer.

    .venv/bin/python benchmarks/replay_abuse.py                     # all scenarios, this checkout
    .venv/bin/python benchmarks/replay_abuse.py --code /work/base sse grpc
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
from tests.limits.attackers import (  # noqa: E402  (the checkout's tests, as the benchmark runs)
    BIG_PING,
    BIG_TEXT,
    JSON_PING,
    PING,
    flood,
    grpc_resumer,
    sse_resumer,
    ws_open,
    ws_resumer,
)

ROOM = "big"


# -- the server and its history ---------------------------------------------------------


@contextmanager
def server(code: str) -> Iterator[tuple[psutil.Process, str, int]]:
    env = {**os.environ, "PYTHONPATH": code}
    args = ["--adapter", "rest", "--adapter", "grpc", "--port", "rest=0", "--port", "grpc=0"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "roomchat", "serve", *args, "--log-level", "error", "--keepalive", "30"],
        stdout=subprocess.PIPE,
        env=env,
        cwd=code,  # `-m` puts the working directory first on the path
        text=True,
    )
    urls: dict[str, str] = {}
    assert proc.stdout is not None
    while len(urls) < 2:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("the server did not start")
        if " listening on " in line:
            head, _, url = line.strip().partition(" listening on ")
            urls[head.removeprefix("roomchat: ")] = url
    try:
        yield psutil.Process(proc.pid), urls["rest"], int(urls["grpc"].rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(10)


def fill(base: str) -> str:
    """1,000 messages in ROOM; the id of the first (resuming after it replays the other 999)."""
    body = json.dumps({"userId": "filler", "text": BIG_TEXT}, ensure_ascii=False).encode()
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=base, timeout=30) as client:
        first = client.post(f"/api/room/{ROOM}", content=body, headers=headers).json()["message"]["id"]
        for _ in range(999):
            assert client.post(f"/api/room/{ROOM}", content=body, headers=headers).status_code == 201
    return str(first)


# -- the probe: a second client asking /healthz every 10 ms, in its own process ---------


def probe(base: str, seconds: float) -> None:
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent = time.monotonic()
            client.get("/healthz")
            latencies.append(time.monotonic() - sent)
            time.sleep(max(0.0, 0.01 - (time.monotonic() - sent)))
    print(json.dumps(latencies))


@contextmanager
def probing(base: str, seconds: float) -> Iterator[dict[str, float]]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--probe", base, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    result: dict[str, float] = {}
    try:
        yield result
    finally:
        out, _ = child.communicate(timeout=seconds + 60)
        latencies = json.loads(out)
        result["worst_ms"] = max(latencies) * 1000
        result["p99_ms"] = statistics.quantiles(latencies, n=100, method="inclusive")[98] * 1000


class Rss:
    """The server's RSS, sampled every 50 ms in a thread; `peak` since `reset`."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> int:
        return int(self.process.memory_info().rss)

    def reset(self) -> int:
        self.peak = self.now()
        return self.peak

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.now())

    def stop(self) -> None:
        self._stop.set()


# -- measuring -----------------------------------------------------------------------


def settle(rss: Rss, seconds: float) -> None:
    """Wait until RSS has not grown for half a second (at most `seconds`)."""
    end = time.monotonic() + seconds
    last, since = rss.now(), time.monotonic()
    while time.monotonic() < end and time.monotonic() - since < 0.5:
        time.sleep(0.1)
        now = rss.now()
        if now > last + 256 * 1024:
            last, since = now, time.monotonic()


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def run_resumers(
    rss: Rss, base: str, name: str, count: int, open_one: Callable[[], socket.socket], rounds: int = 1
) -> dict[str, Any]:
    before = rss.reset()
    afters = []
    with probing(base, 6.0 * rounds) as probed:
        time.sleep(0.5)
        for _ in range(rounds):
            socks = [open_one() for _ in range(count)]
            settle(rss, 4.0)
            close_all(socks)
            time.sleep(1.0)
            afters.append(rss.now())
    return {
        "scenario": name,
        "rss_before_mib": mib(before),
        "rss_peak_mib": mib(rss.peak),
        "per_connection_mib": f"{(rss.peak - before) / count / 2**20:.2f}" if rounds == 1 else "-",
        "rss_after_close_mib": "/".join(mib(a) for a in afters),
        **{k: f"{v:.0f}" for k, v in probed.items()},
    }


def run_ping_flood(
    rss: Rss, base: str, name: str, frame: bytes, frames: int | None, seconds: float
) -> dict[str, Any]:
    before = rss.reset()
    with probing(base, seconds + 2.0) as probed:
        time.sleep(0.5)
        sock = ws_open(base)
        sent = flood(sock, frame, seconds, frames)
        time.sleep(0.5)
        peak = rss.peak
        sock.close()
    return {
        "scenario": name,
        "frames_sent": sent,
        "rss_before_mib": mib(before),
        "rss_peak_mib": mib(peak),
        **{k: f"{v:.0f}" for k, v in probed.items()},
    }


SCENARIOS = ("sse", "ws", "grpc", "ping", "bigping", "jsonping")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--code", default=HERE, help="the checkout whose roomchat to serve")
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    print(f"# {args.code}; load average {os.getloadavg()[0]:.2f}", flush=True)
    for name in args.scenarios:  # a fresh server for each
        print(json.dumps({**scenario(args.code, name), "load": f"{os.getloadavg()[0]:.2f}"}), flush=True)


def scenario(code: str, name: str) -> dict[str, Any]:
    with server(code) as (process, base, grpc_port):
        after = fill(base)
        rss = Rss(process)
        try:
            if name == "sse":
                return run_resumers(rss, base, "sse", 50, lambda: sse_resumer(base, ROOM, after))
            if name == "ws":
                return run_resumers(rss, base, "ws", 50, lambda: ws_resumer(base, ROOM, after))
            if name == "grpc":
                return run_resumers(rss, base, "grpc", 20, lambda: grpc_resumer(grpc_port, ROOM, after), 3)
            if name == "ping":
                return run_ping_flood(rss, base, "ping", PING, None, 8.0)
            if name == "bigping":
                return run_ping_flood(rss, base, "bigping", BIG_PING, None, 8.0)
            return run_ping_flood(rss, base, "jsonping", JSON_PING, 200_000, 8.0)
        finally:
            rss.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        probe(sys.argv[2], float(sys.argv[3]))
    else:
        main()
