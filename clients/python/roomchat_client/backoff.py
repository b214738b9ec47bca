"""Reconnect delays with full jitter, so many clients that lose one server come back spread out."""

from __future__ import annotations

import random

FIRST = 1.0  # the first try comes within this many seconds of the drop
CAP = 10.0  # and no two tries are further apart than this


def delay(attempt: int, rand: random.Random | None = None) -> float:
    """Seconds to wait before try number `attempt` (0 for the first after a drop).

    Uniform in [0, min(CAP, FIRST * 2**attempt)]: the window doubles with each
    failure, and each client picks its own point in it (AWS's "full jitter").
    """
    window = min(CAP, FIRST * 2 ** min(attempt, 16))
    return (rand or random).uniform(0.0, window)
