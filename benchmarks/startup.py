"""Start-up of `roomchat serve` in two checkouts, alternating: seconds to the `listening`
line, and what `python -X importtime` says the imports took on the way there.

    .venv/bin/python benchmarks/startup.py --before /work/base --after . --runs 5 [-- serve args]

Each run is `python -X importtime -m roomchat serve ARGS` with the checkout as the
working directory (so `-m roomchat` is that checkout's), stopped once it listens.
Prints the medians and the load average; compare the two within one run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

_TOP = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")  # a top-level import (no indent)


def once(checkout: Path, args: list[str]) -> tuple[float, float, list[tuple[int, str]]]:
    """Seconds to `listening`, seconds of top-level imports, and the slowest of them."""
    python = checkout / ".venv" / "bin" / "python"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(python), "-X", "importtime", "-m", "roomchat", "serve", *args],
        cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:
        if "listening on" in line:
            break
    listening = time.perf_counter() - started
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    tops = [(int(m[1]), m[2]) for line in err.splitlines() if (m := _TOP.match(line))]
    return listening, sum(us for us, _ in tops) / 1e6, sorted(tops, reverse=True)[:5]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("serve_args", nargs="*", default=["--adapter", "rest", "--port", "rest=0"])
    args = parser.parse_args()
    seen: dict[Path, list[tuple[float, float]]] = {args.before: [], args.after: []}
    slowest: dict[Path, list[tuple[int, str]]] = {}
    for run in range(args.runs):
        for checkout in (args.before, args.after) if run % 2 == 0 else (args.after, args.before):
            listening, imports, slowest[checkout] = once(checkout.resolve(), args.serve_args)
            seen[checkout].append((listening, imports))
    for checkout, runs in seen.items():
        listening = statistics.median(r[0] for r in runs)
        imports = statistics.median(r[1] for r in runs)
        top = ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in slowest[checkout])
        print(f"{checkout}: listening after {listening:.2f} s, imports {imports:.2f} s (slowest: {top})")
    print(f"load average {os.getloadavg()[0]:.2f}; serve {' '.join(args.serve_args)}", file=sys.stdout)


if __name__ == "__main__":
    main()
