"""A second client that asks `/healthz` every 10 ms while an attack runs: the slowest answer
it got is the worst stall another client saw (issue 24's "answered within 200 ms")."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from tests.limits.clients import client_from

BOUND = 0.2  # seconds: the most another client may wait during an attack
EVERY = 0.01


@dataclass
class Probe:
    answers: list[float] = field(default_factory=list)  # seconds each /healthz took
    failures: list[str] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.answers, default=0.0)


@contextlib.asynccontextmanager
async def probing(base: str, source: str = "127.0.0.9") -> AsyncIterator[Probe]:
    """A Probe asking `base`'s /healthz from `source` until the block ends (it asks at least once)."""
    probe = Probe()
    done = asyncio.Event()

    async def ask() -> None:
        async with client_from(source, base, timeout=5) as client:
            while not done.is_set() or not probe.answers:
                sent = time.monotonic()
                try:
                    status = (await client.get("/healthz")).status_code
                except Exception as exc:  # a refused probe is a failure, not a crash of the test
                    status, why = 0, repr(exc)
                else:
                    why = f"/healthz {status}"
                probe.answers.append(time.monotonic() - sent)
                if status != 200:
                    probe.failures.append(why)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), EVERY)

    task = asyncio.ensure_future(ask())
    try:
        yield probe
    finally:
        done.set()
        await task


def rss_mib(pid: int) -> float:
    """A process's resident memory now, in MiB (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")
