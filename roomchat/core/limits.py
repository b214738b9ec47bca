"""Limits (contract: Limits): what one process, one client and one user may take.

Policy and in-process counting only. A rate shared between processes is kept
by the backend (`Backend.spend`), which may use `TokenBuckets` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from roomchat.core.errors import Overloaded, RateLimited

DEFAULT_MAX_ROOMS = 100_000
DEFAULT_HISTORY_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits the room service keeps; 0 turns one off. (Rooms and bytes of
    history are the backend's: see BackendSettings.)"""

    rate: float = 0.0  # posts per second per user (per IP when anonymous); burst twice that
    max_streams: int = 0  # open streams in this process
    max_streams_per_ip: int = 0

    @property
    def burst(self) -> float:
        return 2 * self.rate


class TokenBuckets:
    """One token bucket per key, refilled at `rate` per second up to `burst`.

    Buckets that are full again are forgotten, so idle keys cost nothing.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def spend(self, key: str, rate: float, burst: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there is."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 4096:
            self._forget_full(now, rate, burst)
        return 0.0

    def _forget_full(self, now: float, rate: float, burst: float) -> None:
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * rate >= burst:
                del self._buckets[key]


class StreamCounter:
    """Open streams in this process, in all and per client IP.

    Streams are counted per IP whether or not a per-IP limit is set, so a limit
    set by a reload (SIGHUP) counts the streams already open.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0
        self._by_address: dict[str, int] = {}

    def opening(self, address: str | None) -> None:
        """Count a stream about to open; Overloaded or RateLimited when over a limit."""
        limits = self.limits
        if limits.max_streams and self.open >= limits.max_streams:
            raise Overloaded(f"too many open streams on this server (at most {limits.max_streams})")
        if address is not None:
            count = self._by_address.get(address, 0)
            if limits.max_streams_per_ip and count >= limits.max_streams_per_ip:
                raise RateLimited(
                    f"too many open streams from {address} (at most {limits.max_streams_per_ip})"
                )
            self._by_address[address] = count + 1
        self.open += 1

    def closed(self, address: str | None) -> None:
        self.open -= 1
        if address is not None:
            count = self._by_address.get(address, 1) - 1
            if count:
                self._by_address[address] = count
            else:
                self._by_address.pop(address, None)
