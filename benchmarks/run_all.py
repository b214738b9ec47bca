"""Run the issue-6 scenarios against roomchat and the naive peer, side by side.

    .venv/bin/python benchmarks/run_all.py            # everything, about 6 minutes on 2 cores
    .venv/bin/python benchmarks/run_all.py --quick    # small numbers, to check the script
    .venv/bin/python benchmarks/run_all.py --only flat-1000 --only stalled

Each scenario is one `roomchat bench --json` run per server (a fresh server
each time); the figures go to benchmarks/results/latest.json, which
benchmarks/chart.py draws and docs/performance.md quotes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from roomchat.bench.runner import free_port, stop_process

HERE = Path(__file__).resolve().parent
PEER = Path(os.environ.get("NAIVE_PEER", "/work/shared/bench/naive_peer.py"))
PEER_ARGS = ["--text-field", "data", "--post-path", "/api/room/{room}", "--stream-path", "/api/stream/{room}"]

# name: (bench arguments, servers)
SCENARIOS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "flat-1000": (["-n", "1000", "-m", "2000"], ("roomchat", "naive")),
    "rate20-1000": (["-n", "1000", "-m", "200", "--rate", "20"], ("roomchat", "naive")),
    "rate20-1000-pinned": (["-n", "1000", "-m", "200", "--rate", "20", "--pin"], ("roomchat", "naive")),
    "rate1-10000": (["-n", "10000", "-m", "20", "--rate", "1", "--drain", "10"], ("roomchat", "naive")),
    "grpc-100": (["--transport", "grpc", "-n", "100", "-m", "5000"], ("roomchat",)),
    "stalled-baseline": (["-n", "20", "-m", "20000"], ("roomchat", "naive")),
    "stalled": (["-n", "20", "-m", "20000", "--stalled", "1"], ("roomchat", "naive")),
}
SWEEP = [10, 100, 1000, 3000, 10000]  # listeners, flat out, for the chart
SWEEP_DELIVERIES = 600_000


def sweep_args(listeners: int, quick: bool) -> list[str]:
    deliveries = SWEEP_DELIVERIES // (20 if quick else 1)
    messages = max(20, min(20_000, deliveries // listeners))
    return ["-n", str(listeners), "-m", str(messages), "--drain", "10"]


@contextlib.contextmanager
def naive_peer() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(PEER), "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the naive peer did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop_process(proc, grace=10)


def bench(args: list[str], server: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "roomchat", "bench", "--json", "--no-progress", *args]
    with contextlib.ExitStack() as stack:
        if server == "naive":
            url, pid = stack.enter_context(naive_peer())
            cmd += ["--url", url, "--pid", str(pid), *PEER_ARGS]
        print("$", " ".join(cmd[1:]), file=sys.stderr, flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        return {"error": done.stderr.strip().splitlines()[-3:] or [f"exit status {done.returncode}"]}
    against = " (against the naive peer)" if server == "naive" else ""
    result["command"] = "roomchat bench " + " ".join(args) + against
    return result


def grpc_available() -> bool:
    return (Path(__file__).resolve().parent.parent / "roomchat/adapters/grpc/generated").is_dir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small numbers, to check the script")
    parser.add_argument("--only", action="append", help="scenario name (repeatable), or 'sweep'")
    parser.add_argument("--out", default=str(HERE / "results" / "latest.json"))
    args = parser.parse_args()
    wanted = args.only or [*SCENARIOS, "sweep"]
    results: dict[str, Any] = {
        "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "quick": args.quick,
        "scenarios": {},
        "sweep": {},
    }
    for name, (bench_args, servers) in SCENARIOS.items():
        if name not in wanted:
            continue
        if name.startswith("grpc") and not grpc_available():
            results["scenarios"][name] = {"roomchat": {"error": ["the gRPC adapter is not installed"]}}
            continue
        if args.quick:
            bench_args = shrink(bench_args)
        results["scenarios"][name] = {server: bench(bench_args, server) for server in servers}
    if "sweep" in wanted:
        for server in ("roomchat", "naive"):
            results["sweep"][server] = [bench(sweep_args(n, args.quick), server) for n in SWEEP]
    results["machine"]["load_average_after"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


def shrink(bench_args: list[str]) -> list[str]:
    out = list(bench_args)
    for flag, cap in (("-n", 200), ("-m", 200)):
        i = out.index(flag)
        out[i + 1] = str(min(int(out[i + 1]), cap))
    return out


if __name__ == "__main__":
    main()
