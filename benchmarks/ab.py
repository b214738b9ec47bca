"""Same-run A/B of `roomchat bench` between two checkouts, in alternating pairs.

    .venv/bin/python benchmarks/ab.py --before /work/base --after . --transport sse --pairs 5

Each pair runs the bench of one checkout then the other (the order alternates
from pair to pair), each with its own venv and a fresh server, and prints the
median ratio after/before of deliveries/s and of the server's CPU per delivery,
with the load average beside each pair. The machine is shared: compare ratios
within one run, never figures across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

FIGURES = ("deliveries_per_second", "server_cpu_us_per_delivery")


def bench(checkout: Path, transport: str, extra: list[str]) -> dict[str, float]:
    command = [str(checkout / ".venv" / "bin" / "roomchat"), "bench", "--transport", transport]
    done = subprocess.run(
        [*command, *extra, "--json", "--no-progress"], capture_output=True, text=True, check=True, timeout=600
    )
    figures = json.loads(done.stdout)
    assert figures["lost"] == 0, figures
    return {name: float(figures[name]) for name in FIGURES}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--transport", default="sse")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("bench_args", nargs="*", default=["-n", "1000", "-m", "2000"])
    args = parser.parse_args()
    ratios: dict[str, list[float]] = {name: [] for name in FIGURES}
    for pair in range(args.pairs):
        order = [args.before, args.after] if pair % 2 == 0 else [args.after, args.before]
        got = {checkout: bench(checkout, args.transport, args.bench_args) for checkout in order}
        load = os.getloadavg()[0]
        for name in FIGURES:
            ratios[name].append(got[args.after][name] / got[args.before][name])
        shown = "  ".join(f"{name} {got[args.after][name] / got[args.before][name]:.3f}" for name in FIGURES)
        print(f"pair {pair + 1}: after/before {shown}  (load average {load:.2f})", flush=True)
    medians = "  ".join(f"{name} {statistics.median(ratios[name]):.3f}" for name in FIGURES)
    print(f"{args.transport} median after/before: {medians}")


if __name__ == "__main__":
    main()
