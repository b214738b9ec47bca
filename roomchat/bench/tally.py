"""Counting deliveries cheaply: one regex scan per read, no JSON parse.

Every bench message's text carries `~<seq>:<sent monotonic ns>~`. The marker
survives any framing that keeps the text as is (roomchat's SSE JSON, the
naive peer's `data: <user> → <text>`, a gRPC message's text), so loss,
duplicates, order and latency come from one bytes search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARK = re.compile(rb"~(\d+):(\d+)~")
BUCKET_SHIFT = 13  # latency histogram buckets of 8.192 µs
LAGGED = b"event: lagged"
LAGGED_WS = b'"type":"lagged"'
PRESENCE = b"event: presence\n"


def marker(seq: int, sent_ns: int) -> str:
    return f"~{seq}:{sent_ns}~"


@dataclass
class Tally:
    """What the listeners of one worker process received, summed."""

    received: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    lagged: int = 0  # streams that said `event: lagged`
    ended: int = 0  # streams that ended before the run did
    failed: int = 0  # streams that could not be opened
    presence: int = 0  # presence events, summed over the streams
    last_ns: int = 0  # when the last delivery arrived
    hist: dict[int, int] = field(default_factory=dict)  # bucket -> deliveries

    def merge(self, other: Tally) -> None:
        for name in ("received", "duplicated", "out_of_order", "lagged", "ended", "failed", "presence"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.last_ns = max(self.last_ns, other.last_ns)
        hist = self.hist
        for k, v in other.hist.items():
            hist[k] = hist.get(k, 0) + v


class Sink:
    """One listener's view: which sequence numbers it has seen."""

    __slots__ = ("_last", "_rest", "_seen", "_streams", "lagged", "tally")

    def __init__(self, tally: Tally, messages: int, publishers: int = 1) -> None:
        self.tally = tally
        self.lagged = False
        self._seen = bytearray(messages + 1)
        # publisher p posts seq p+1, p+1+k, ... in order: each must arrive in that order
        self._streams = publishers
        self._last = [-1] * publishers
        self._rest = b""

    def feed(self, data: bytes, now: int) -> None:
        """Bytes as they came off the wire, with the time they came."""
        buf = self._rest + data if self._rest else data
        cut = buf.rfind(b"\n") + 1  # markers never span a newline
        self._rest = buf[cut:]
        if not cut:
            return
        if LAGGED in buf or LAGGED_WS in buf:
            self.lagged = True
        if PRESENCE in buf:  # counted up to `cut` only: the rest is counted with the next read
            self.tally.presence += buf.count(PRESENCE, 0, cut)
        marks = MARK.findall(buf, 0, cut)
        tally = self.tally
        if not marks:
            return
        seen = self._seen
        hist = tally.hist
        last = self._last
        k_pub = self._streams
        got = 0
        size = len(seen)
        for s, t in marks:
            seq = int(s)
            if seq >= size:
                continue  # not from this run
            if seen[seq]:
                tally.duplicated += 1
                continue
            seen[seq] = 1
            got += 1
            p = seq % k_pub
            if seq < last[p]:
                tally.out_of_order += 1
            else:
                last[p] = seq
            k = (now - int(t)) >> BUCKET_SHIFT
            hist[k] = hist.get(k, 0) + 1
        tally.received += got
        tally.last_ns = now


def percentile_ms(hist: dict[int, int], fraction: float) -> float | None:
    """The latency (upper edge of its bucket, ms) under which `fraction` of deliveries fall."""
    total = sum(hist.values())
    if not total:
        return None
    want = fraction * total
    acc = 0
    for k in sorted(hist):
        acc += hist[k]
        if acc >= want:
            return ((k + 1) << BUCKET_SHIFT) / 1e6
    return ((max(hist) + 1) << BUCKET_SHIFT) / 1e6
