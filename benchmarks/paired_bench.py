"""`roomchat bench` on two checkouts in alternating same-run pairs: the ratio of their throughput.

For each transport, runs the bench against checkout A then B (then B then A on the
next pair, so a drifting machine load hits both alike), `--pairs` times, and prints
each run's deliveries/s and server CPU per delivery with the load average, and the
median B/A ratios (CPU per delivery is the steadier figure on a loaded machine).

    .venv/bin/python benchmarks/paired_bench.py --a /work/base --b . --transports sse,ws,grpc
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def bench(code: str, transport: str, listeners: int, messages: int) -> tuple[float, float]:
    args = ["-m", "roomchat", "bench", "--transport", transport, "-n", str(listeners), "-m", str(messages)]
    done = subprocess.run(
        [sys.executable, *args, "--json", "--no-progress"],
        cwd=code,  # `-m` puts the working directory first on the path: that checkout's roomchat
        env={**os.environ, "PYTHONPATH": os.path.abspath(code)},
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(done.stdout)
    return float(figures["deliveries_per_second"]), float(figures["server_cpu_us_per_delivery"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a", required=True, help="the 'before' checkout")
    parser.add_argument("--b", required=True, help="the 'after' checkout")
    parser.add_argument("--transports", default="sse,ws,grpc")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("-n", "--listeners", type=int, default=1000)
    parser.add_argument("-m", "--messages", type=int, default=300)
    args = parser.parse_args()
    for transport in args.transports.split(","):
        rates, cpus = [], []
        for pair in range(args.pairs):
            order = [("a", args.a), ("b", args.b)] if pair % 2 == 0 else [("b", args.b), ("a", args.a)]
            got = {}
            for name, code in order:
                got[name] = bench(code, transport, args.listeners, args.messages)
                rate, cpu = got[name]
                load = os.getloadavg()[0]
                print(f"{transport} pair {pair} {name}: {rate:,.0f}/s, {cpu:.2f} us each, load {load:.2f}")
            rates.append(got["b"][0] / got["a"][0])
            cpus.append(got["b"][1] / got["a"][1])
        for what, ratios in (("deliveries/s", rates), ("server CPU per delivery", cpus)):
            each = ", ".join(f"{r:.3f}" for r in ratios)
            print(f"{transport} {what}: b/a median {statistics.median(ratios):.3f} ({each})", flush=True)


if __name__ == "__main__":
    main()
