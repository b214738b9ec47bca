"""`roomchat serve --workers 2` against `--workers 1`, over Redis, in one run.

Starts its own redis-server, then runs `roomchat bench` (the client in its
own processes) against a server started with `--backend redis://… --workers K`
for each K, alternating K run by run, and prints the median deliveries/s,
server CPU per delivery (summed over the supervisor and its workers), and
server CPU seconds per worker.

    .venv/bin/python benchmarks/workers.py                        # SSE, 1,000 listeners
    .venv/bin/python benchmarks/workers.py --transport grpc --listeners 100 --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from cross_process import redis_server  # type: ignore[import-not-found]


def bench(url: str, workers: int, args: argparse.Namespace) -> dict[str, float]:
    server = ["--backend", url, "--workers", str(workers)]
    command = [
        sys.executable, "-m", "roomchat", "bench", "--json", "--no-progress",
        "--transport", args.transport, "-n", str(args.listeners), "-m", str(args.messages),
        *(f"--server-arg={a}" for a in server),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", default="sse")
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to compare")
    args = parser.parse_args()
    counts = [int(k) for k in args.workers.split(",")]
    results: dict[int, list[dict[str, float]]] = {k: [] for k in counts}
    with redis_server() as url:
        for run in range(args.runs):
            for k in counts if run % 2 == 0 else counts[::-1]:
                f = bench(url, k, args)
                results[k].append(f)
                print(
                    f"  run {run + 1}: --workers {k}: {f['deliveries_per_second']:,.0f} deliveries/s, "
                    f"{f['server_cpu_us_per_delivery']:.2f} µs server CPU per delivery",
                    flush=True,
                )
    print(f"\n{args.transport}, {args.listeners:,} listeners, {args.messages} messages flat out, "
          f"median of {args.runs} alternating runs:\n")  # fmt: skip
    print("| --workers | deliveries/s | server CPU per delivery | server CPU s per worker |")
    print("| --- | --- | --- | --- |")
    for k in counts:
        runs = results[k]
        rate = statistics.median(f["deliveries_per_second"] for f in runs)
        cpu = statistics.median(f["server_cpu_us_per_delivery"] for f in runs)
        per_worker = statistics.median(f["server_cpu_seconds"] for f in runs) / k
        print(f"| {k} | {rate:,.0f} | {cpu:.2f} µs | {per_worker:.2f} s |")


if __name__ == "__main__":
    main()
