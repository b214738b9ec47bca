"""Latency histograms the service keeps for /metrics: plain integers, no framework.

Observed once per post, per message fanned out and per backend call, never per
delivery. The HTTP adapters' collector turns them into Prometheus histograms
when scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

# Seconds: 0.5 ms to 10 s, as Prometheus's defaults but starting lower (a post
# on the memory backend takes tens of microseconds).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), +Inf last
    total: float  # the sum of every observation, seconds
    count: int


class Histogram:
    """Counts observations into fixed buckets; `observe` is a bisect and two additions."""

    __slots__ = ("_counts", "_sum")

    def __init__(self) -> None:
        self._counts = [0] * (len(BUCKETS) + 1)  # the last: above every bound
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect_left(BUCKETS, seconds)] += 1
        self._sum += seconds

    def snapshot(self) -> Snapshot:
        running, cumulative = 0, []
        for bound, count in zip((*BUCKETS, float("inf")), self._counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return Snapshot(tuple(cumulative), self._sum, running)


class Timings:
    """What the service times, each a histogram of seconds."""

    __slots__ = ("backend", "delivery_lag", "post")

    def __init__(self) -> None:
        self.post = Histogram()  # a post from its admission to its acknowledgement
        self.delivery_lag = Histogram()  # a message's time to its fan-out in this process
        self.backend = Histogram()  # a backend round trip: storing a post, a health ping

    def snapshot(self) -> dict[str, Snapshot]:
        return {name: getattr(self, name).snapshot() for name in self.__slots__}
