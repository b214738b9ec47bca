"""Message ids `<milliseconds>-<sequence>` that only grow, whatever the wall clock does."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from roomchat.core.message import IdKey

Clock = Callable[[], int]
"""The wall clock in milliseconds since the epoch; injected by tests to step it back."""

SPAN = 1 << 20  # sequence numbers one boot may give within one millisecond
BOOTS = 1 << 31  # how many per-boot ranges there are: two boots share one with odds 1 in 2**31


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def boot_range() -> int:
    """A random start for this boot's sequence numbers (a multiple of SPAN).

    A backend that keeps nothing across a restart (memory) cannot know the last
    run's ids: with the clock stepped back it would give them again. Its ids take
    their sequence from a range of their own instead, so a restart's ids differ
    from every earlier boot's (but for a 1 in 2**31 chance), with nothing stored.
    """
    return secrets.randbelow(BOOTS) * SPAN


class IdSequence:
    """Hands out ids in the form of Redis stream ids: the clock's millisecond,
    or, when the clock is behind the last id (stepped back, or a restart on a
    faster machine), the last id's millisecond with the next sequence number.

    `floor` is the last id ever given (kept by a backend that persists it), so
    a restart with the clock stepped back still goes on above it. `base` (a
    multiple of SPAN, e.g. `boot_range()`) is where every millisecond's sequence
    starts; past SPAN numbers in one millisecond the next millisecond is taken,
    so the sequence stays in [base, base + SPAN) and ids still only grow.
    """

    def __init__(self, clock: Clock = wall_ms, floor: IdKey = (0, 0), base: int = 0) -> None:
        self._clock = clock
        self._base = base
        self.last = floor

    def next(self) -> tuple[IdKey, int]:
        """The next id, and the clock's millisecond now (the message's time)."""
        now = self._clock()
        last_ms, last_seq = self.last
        if now > last_ms:
            self.last = (now, self._base)
        elif self._base <= last_seq < self._base + SPAN - 1:
            self.last = (last_ms, last_seq + 1)
        else:  # this millisecond's range is used up (or was another boot's): the next one
            self.last = (last_ms + 1, self._base)
        return self.last, now
