"""Print the Markdown table of docs/performance.md from benchmarks/results/latest.json.

    .venv/bin/python benchmarks/table.py [results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def num(x: float | None, spec: str = ",.0f") -> str:
    return "-" if x is None else format(x, spec)


def row(name: str, server: str, f: dict[str, Any]) -> str:
    if "error" in f:
        return f"| {name} | {server} | {'; '.join(f['error'])} |" + " |" * 8
    lat = f["latency_ms"]
    lost = f"{f['lost']:,} / {f['duplicated']:,} / {f['out_of_order']:,}"
    stalled = f" ({f['stalled_dropped_as_lagged']}/{f['stalled']} stalled lagged)" if f["stalled"] else ""
    return (
        f"| {name} | {server} | {f['deliveries_received']:,} of {f['deliveries_expected']:,}{stalled} "
        f"| {lost} "
        f"| {num(f['deliveries_per_second'])} | {num(lat['p50'], '.1f')} / {num(lat['p99'], '.1f')} "
        f"/ {num(lat['max'], '.1f')} | {num(f['server_cpu_us_per_delivery'], '.2f')} "
        f"| {num(f['server_rss_kib_per_idle_listener'], '.1f')} | {num(f['server_rss_growth_mib'], '.1f')} "
        f"| {f['client_busiest_worker']:.0%}{' (limit)' if f['client_bound'] else ''} |"
    )


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks" / "results" / "latest.json"
    results = json.loads(source.read_text())
    print(
        "| scenario | server | deliveries received | lost / dup / out of order | deliveries/s "
        "| latency ms p50 / p99 / max | server µs CPU per delivery | KiB per idle listener "
        "| RSS growth MiB | busiest client worker |"
    )
    print("|" + " --- |" * 10)
    for name, servers in results["scenarios"].items():
        for server, f in servers.items():
            print(row(name, server, f))
    for server, runs in results["sweep"].items():
        for f in runs:
            print(row(f"sweep {f.get('listeners', '?')}", server, f))


if __name__ == "__main__":
    main()
