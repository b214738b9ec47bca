"""Writing every marked stream once per event-loop turn, shared by the SSE, WebSocket and gRPC fast paths.

A push marks its stream instead of waking a task per listener; one callback
per loop turn then writes what each marked stream has pending, in one write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

log = logging.getLogger("roomchat.http")
PIECE = 64 * 1024
"""Bytes of room messages a stream (a WebSocket connection: all its rooms) writes per loop turn
at most, and only while its socket takes writes: a replay of a whole history, or a backlog,
goes out a piece per turn as the socket drains, never as one joined write, and one client's
resume never holds the loop for long (issue 24)."""
_T = TypeVar("_T")


class Flushable(Protocol):
    def flush(self) -> None:
        """Write everything pending; never await."""
        ...

    def hang_up(self) -> None:
        """Give up on this stream: its flush failed."""
        ...


class Flusher:
    """Runs every marked stream's flush once per event-loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._marked: list[Flushable] = []

    def add(self, stream: Flushable) -> None:
        if not self._marked:
            self.loop.call_soon(self._run)
        self._marked.append(stream)

    def _run(self) -> None:
        marked, self._marked = self._marked, []
        for stream in marked:
            try:
                stream.flush()
            except Exception:  # one broken stream must not leave the others marked and unflushed
                log.exception("writing to a stream failed")
                stream.hang_up()


class MarkedOnce:
    """A stream's `mark` (its listener's `notify`): queue it for this turn's flush once.

    Subclasses set `_marked` (False) and `_flusher`, and clear `_marked` in `flush`.
    """

    __slots__ = ("_flusher", "_marked")
    _marked: bool
    _flusher: Flusher

    def mark(self) -> None:
        if not self._marked:
            self._marked = True
            self._flusher.add(self)  # type: ignore[arg-type]  # the subclass is Flushable


_per_loop: dict[tuple[asyncio.AbstractEventLoop, object], Any] = {}


def one_per_loop(key: object, make: Callable[[asyncio.AbstractEventLoop], _T]) -> _T:
    """The running loop's one `make(loop)` for `key`; the entries of closed loops are dropped."""
    loop = asyncio.get_running_loop()
    found = _per_loop.get((loop, key))
    if found is None:
        for old in [k for k in _per_loop if k[0].is_closed()]:
            del _per_loop[old]
        found = _per_loop[(loop, key)] = make(loop)
    return cast(_T, found)


def flusher() -> Flusher:
    """This loop's flusher (look it up once per stream: get_running_loop() costs a getpid() syscall)."""
    return one_per_loop("flush", Flusher)
