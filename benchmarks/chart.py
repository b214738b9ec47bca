"""Draw docs/performance.png from benchmarks/results/latest.json.

    .venv/bin/pip install -e '.[bench]'       # matplotlib
    .venv/bin/python benchmarks/chart.py [results.json] [out.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
LABELS = {"roomchat": "roomchat (SSE)", "naive": "naive Starlette peer (SSE)"}


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks" / "results" / "latest.json"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "performance.png"
    results = json.loads(source.read_text())
    fig, (rate_ax, p99_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for server, runs in results["sweep"].items():
        points = sorted(
            (r["listeners"], r["deliveries_per_second"], r["latency_ms"]["p99"])
            for r in runs
            if "error" not in r and r["deliveries_per_second"]
        )
        if not points:
            continue
        xs = [p[0] for p in points]
        rate_ax.plot(xs, [p[1] / 1000 for p in points], marker="o", label=LABELS.get(server, server))
        p99_ax.plot(xs, [p[2] for p in points], marker="o", label=LABELS.get(server, server))
    for ax in (rate_ax, p99_ax):
        ax.set_xscale("log")
        ax.set_xlabel("listeners on one room")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    rate_ax.set_ylabel("deliveries per second (thousands)")
    rate_ax.set_title("Throughput, flat out")
    p99_ax.set_ylabel("p99 post-to-receipt latency (ms)")
    p99_ax.set_yscale("log")
    p99_ax.set_title("p99 latency, flat out")
    machine = results["machine"]
    title = f"roomchat bench, {machine['cpus']} cores, client and server on one machine ({results['when']})"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
