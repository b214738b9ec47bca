"""Message ids `<milliseconds>-<sequence>` that only grow, whatever the wall clock does."""

from __future__ import annotations

import time
from collections.abc import Callable

from roomchat.core.message import IdKey

Clock = Callable[[], int]
"""The wall clock in milliseconds since the epoch; injected by tests to step it back."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class IdSequence:
    """Hands out ids in the form of Redis stream ids: the clock's millisecond,
    or, when the clock is behind the last id (stepped back, or a restart on a
    faster machine), the last id's millisecond with the next sequence number.

    `floor` is the last id ever given (kept by a backend that persists it), so
    a restart with the clock stepped back still goes on above it.
    """

    def __init__(self, clock: Clock = wall_ms, floor: IdKey = (0, 0)) -> None:
        self._clock = clock
        self.last = floor

    def next(self) -> tuple[IdKey, int]:
        """The next id, and the clock's millisecond now (the message's time)."""
        now = self._clock()
        last_ms, last_seq = self.last
        self.last = (now, 0) if now > last_ms else (last_ms, last_seq + 1)
        return self.last, now
