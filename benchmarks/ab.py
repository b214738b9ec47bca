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
import sys
from pathlib import Path

FIGURES = ("deliveries_per_second", "server_cpu_us_per_delivery")


def bench(checkout: Path, transport: str, extra: list[str]) -> dict[str, float] | None:
    """One run's figures; None (said on stderr) when the run failed or lost messages."""
    command = [str(checkout / ".venv" / "bin" / "roomchat"), "bench", "--transport", transport]
    done = subprocess.run(
        [*command, *extra, "--json", "--no-progress"], capture_output=True, text=True, timeout=600,
        cwd=checkout,  # the server it starts is `python -m roomchat`: the checkout's own package
    )  # fmt: skip
    figures = json.loads(done.stdout) if done.returncode == 0 else None
    if figures is None or figures["lost"]:
        print(f"{checkout}: the run failed: {done.stderr.strip()[-300:]}", file=sys.stderr, flush=True)
        return None
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
        if None in got.values():
            continue
        after, before = got[args.after], got[args.before]
        assert after is not None and before is not None
        for name in FIGURES:
            ratios[name].append(after[name] / before[name])
        shown = "  ".join(f"{name} {after[name] / before[name]:.3f}" for name in FIGURES)
        print(f"pair {pair + 1}: after/before {shown}  (load average {load:.2f})", flush=True)
    if not ratios[FIGURES[0]]:
        raise SystemExit("no pair completed")
    medians = "  ".join(f"{name} {statistics.median(ratios[name]):.3f}" for name in FIGURES)
    print(f"{args.transport} median after/before: {medians}")


if __name__ == "__main__":
    main()
