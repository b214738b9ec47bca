"""`roomchat bench` on two checkouts in alternating same-run pairs: the ratio of their throughput.

For each transport, runs the bench against checkout A then B (then B then A on the
next pair, so a drifting machine load hits both alike), `--pairs` times, and prints
each run's deliveries/s with the load average, and the median B/A ratio.

    .venv/bin/python benchmarks/paired_bench.py --a /work/base --b . --transports sse,ws,grpc
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def bench(code: str, transport: str, listeners: int, messages: int) -> float:
    args = ["-m", "roomchat", "bench", "--transport", transport, "-n", str(listeners), "-m", str(messages)]
    done = subprocess.run(
        [sys.executable, *args, "--json", "--no-progress"],
        cwd=code,  # `-m` puts the working directory first on the path: that checkout's roomchat
        env={**os.environ, "PYTHONPATH": os.path.abspath(code)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(done.stdout)["deliveries_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a", required=True, help="the 'before' checkout")
    parser.add_argument("--b", required=True, help="the 'after' checkout")
    parser.add_argument("--transports", default="sse,ws,grpc")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("-n", "--listeners", type=int, default=100)
    parser.add_argument("-m", "--messages", type=int, default=2000)
    args = parser.parse_args()
    for transport in args.transports.split(","):
        ratios = []
        for pair in range(args.pairs):
            order = [("a", args.a), ("b", args.b)] if pair % 2 == 0 else [("b", args.b), ("a", args.a)]
            got = {}
            for name, code in order:
                got[name] = bench(code, transport, args.listeners, args.messages)
                print(
                    f"{transport} pair {pair} {name}: {got[name]:,.0f}/s, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            ratios.append(got["b"] / got["a"])
        each = ", ".join(f"{r:.3f}" for r in ratios)
        print(f"{transport}: b/a median {statistics.median(ratios):.3f} ({each})")


if __name__ == "__main__":
    main()
