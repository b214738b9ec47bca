"""One listener: a bounded buffer between a room and one client's writer.

The room pushes into it without ever waiting; the writer takes what is
pending, a piece of at most a few tens of KiB at a time (`take_frames`), and
writes each piece in one call once its socket has room. A replay rides the
same buffer: it is written piece by piece as the socket drains, never joined
into one write, and a reader that will not read fills the buffer and is
ended as lagged like any other.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass

from roomchat.core.message import Codec, IdKey, Message

_FEW = 64  # pending messages encoded at once by `take_frames`; a longer backlog (a replay) a piece at a time


class EndReason(enum.Enum):
    """Why a listener's stream ends."""

    DELETED = "deleted"  # the room was deleted
    LAGGED = "lagged"  # its buffer was full: the client was too slow
    SHUTDOWN = "shutdown"  # the server is stopping
    UNAVAILABLE = "unavailable"  # the backend's feed was lost; resume later
    CLOSED = "closed"  # the client went away
    EXPIRED = "expired"  # the caller's token expired: resume with a fresh one


@dataclass(frozen=True, slots=True)
class Gap:
    """The id a client resumed from is no longer in history."""

    last_event_id: str
    oldest_id: str | None


class Counters:
    """Plain counters shared by a service and its listeners; read by /metrics."""

    __slots__ = ("delivered", "lagged", "published")

    def __init__(self) -> None:
        self.published = 0
        self.delivered = 0
        self.lagged = 0


class Listener:
    """A client's place in a room. Adapters call `wait` and `take`."""

    __slots__ = (
        "_counters",
        "_floor",
        "_limit",
        "_pending",
        "_waiter",
        "ended",
        "gap",
        "last_id",
        "notify",
        "room_id",
        "transport",
    )

    def __init__(self, room_id: str, transport: str, limit: int, counters: Counters) -> None:
        self.room_id = room_id
        self.transport = transport
        self.ended: EndReason | None = None
        self.gap: Gap | None = None
        self.last_id: str | None = None  # the last id handed to the writer
        self._limit = limit
        self._pending: list[Message] = []
        self._waiter: asyncio.Future[None] | None = None
        self._floor: IdKey | None = None  # drop live messages at or below this key
        self._counters = counters
        # A writer that can take messages without being woken sets `notify`: pushes
        # then call it instead of waking `wait`, and `end` calls it too
        # (see roomchat.adapters.http.sse and .websocket).
        self.notify: Callable[[], None] | None = None

    def push(self, message: Message) -> None:
        """Hot path, once per message per listener: append and wake. Never await here."""
        if self.ended is not None:
            return
        floor = self._floor
        if floor is not None:
            if message.key <= floor:
                return  # already sent as part of the replay
            self._floor = None  # ids only grow: every later message passes too
        if len(self._pending) >= self._limit:
            self._counters.lagged += 1
            self._pending = []
            self.end(EndReason.LAGGED)
            return
        self._pending.append(message)
        if self.notify is not None:
            self.notify()
        else:
            self.wake()

    def note(self, note: Message) -> None:
        """Queue a presence note (see roomchat.core.presence): like `push`, without the replay floor.

        Only listeners that asked for presence get notes, once their replay is queued.
        The tail of `push` is repeated here rather than shared, so the per-message
        hot path makes no extra call.
        """
        if self.ended is not None:
            return
        if len(self._pending) >= self._limit:
            self._counters.lagged += 1
            self._pending = []
            self.end(EndReason.LAGGED)
            return
        self._pending.append(note)
        if self.notify is not None:
            self.notify()
        else:
            self.wake()

    def end(self, reason: EndReason) -> None:
        """End the stream; what is pending is still taken, except after a lag or a hang-up."""
        if self.ended is None:
            self.ended = reason
            if reason is EndReason.CLOSED:
                self._pending = []  # nobody is there to take it
            self.wake()
            if self.notify is not None:  # a writer that is not parked in `wait` must hear of it too
                self.notify()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until there is something to take or the stream ended; False on timeout."""
        if self._pending or self.ended is not None:
            return True
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return bool(self._pending) or self.ended is not None

    def take(self) -> list[Message]:
        """Everything pending, oldest first (writers use `take_frames`, which bounds a write)."""
        batch = self._pending
        if batch:
            self._pending = []
            self._taken(batch)
        return batch

    def take_frames(self, frames: list[bytes], codec: Codec, budget: int) -> int:
        """Append the frames of the oldest pending messages to `frames`: at most `budget` bytes
        (but always one frame, however large); the bytes appended.

        What is left stays pending for the next piece, so a writer writes a piece per loop
        turn while its socket takes them, and none while it does not.
        """
        pending = self._pending
        count = len(pending)
        if count == 1:  # the hot path of a live stream (one message a turn): as little as `take`
            message = pending[0]
            frame = message.encode(codec)
            frames.append(frame)
            self._pending = []
            if message.id:  # a presence note has none
                self.last_id = message.id
            self._counters.delivered += 1
            return len(frame)
        if not count:
            return 0
        if count <= _FEW:  # a short backlog: all of it, without a loop
            batch = [m.encode(codec) for m in pending]
            size = sum(map(len, batch))
            if size <= budget:
                frames += batch
                self._pending = []
                self._taken(pending)
                return size
        size = 0
        count = 0
        for message in pending:
            frame = message.encode(codec)
            if count and size + len(frame) > budget:
                break
            frames.append(frame)
            size += len(frame)
            count += 1
        if count == len(pending):
            self._pending = []
            self._taken(pending)
        elif count:
            self._taken(pending[:count])
            del pending[:count]
        return size

    def _taken(self, batch: list[Message]) -> None:
        # A presence note has no id: the last id is that of the last message.
        self.last_id = batch[-1].id or next((m.id for m in reversed(batch) if m.id), self.last_id)
        self._counters.delivered += len(batch)

    @property
    def pending(self) -> bool:
        """Something is left to take."""
        return bool(self._pending)

    @property
    def done(self) -> bool:
        """Ended and nothing left to take: the writer ends the stream."""
        return self.ended is not None and not self._pending

    def begin(self, replay: list[Message], after: IdKey | None, gap: Gap | None) -> None:
        """Put a replay from history ahead of the live messages pushed meanwhile.

        Live messages at or below the replay's last id (or the resumed id) are
        dropped, now and as they arrive, so the seam has no gap and no duplicate.
        """
        self.gap = gap
        floor = replay[-1].key if replay else after
        live = self._pending
        if floor is not None:
            live = [m for m in live if m.key > floor]
            self._floor = None if live else floor
        self._pending = replay + live
        if self._pending:
            self.wake()

    @property
    def waiting(self) -> bool:
        """Its writer is parked in `wait`."""
        return self._waiter is not None

    def wake(self) -> None:
        """Make `wait` return now: the writer should take what is pending."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
