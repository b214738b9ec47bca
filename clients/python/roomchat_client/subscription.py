"""One room's events as an async iterator, kept in order across the connection's reconnects."""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from types import TracebackType
from typing import Protocol

from roomchat_client.events import Event, Message

FROM_START = "0-0"  # a resume point no room holds: the server answers `gap` and all of history


class State(enum.Enum):
    IDLE = "idle"  # not subscribed on the current connection (none, or a fresh one)
    SUBSCRIBING = "subscribing"  # `subscribe` sent; frames of the room before `subscribed` are stale
    ACTIVE = "active"
    PAUSED = "paused"  # the reader fell `buffer` events behind: unsubscribed until it catches up
    ENDED = "ended"


class _Owner(Protocol):
    def paused(self, subscription: Subscription) -> None: ...

    def drained(self, subscription: Subscription) -> None: ...

    async def unsubscribe(self, subscription: Subscription) -> None: ...


class Subscription:
    """Iterate it for `Message`, `Gap` and `Presence` events; the iteration stops when the room
    is deleted or the subscription is closed. `async with` (or `close()`) unsubscribes.

    Events wait here until read. Past `buffer` unread events the room is unsubscribed (the
    connection's other rooms carry on) and subscribed again after the last event kept once
    the reader has caught up halfway: memory stays bounded and nothing is lost.
    """

    def __init__(
        self,
        owner: _Owner,
        room_id: str,
        last_id: str | None,
        *,
        presence: bool,
        buffer: int,
        typing: bool = False,
    ) -> None:
        self.room_id = room_id
        self.last_id = last_id  # the id of the last message received: where a resubscribe resumes
        self.presence = presence
        self.typing = typing
        self.state = State.IDLE
        self.generation = -1  # the connection it was last subscribed on
        self.subscribed_before = False
        self.auth_generation = -1  # the token it was subscribed with
        self.from_start = last_id is None  # an empty room: a resume before any message replays all
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._owner = owner
        self._buffer = buffer
        self._events: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._error: BaseException | None = None

    @property
    def resume_id(self) -> str | None:
        """The `lastId` to subscribe with now."""
        if self.last_id is None and self.from_start and self.subscribed_before:
            return FROM_START
        return self.last_id

    # -- fed by the connection -------------------------------------------------

    def push(self, event: Event) -> None:
        if isinstance(event, Message):
            self.last_id = event.id
            self.from_start = False
        self._events.append(event)
        self._wake.set()
        if len(self._events) >= self._buffer and self.state is State.ACTIVE:
            self._owner.paused(self)

    def finish(self, error: BaseException | None = None) -> None:
        """No more events: the iteration ends after those already here (raising `error` if given)."""
        self.state = State.ENDED
        self._error = error
        self._wake.set()
        if not self.ready.done():
            self.ready.set_exception(error or ConnectionError("closed before it was subscribed"))
            self._error = None  # raised by `subscribe`, not again by the iteration

    # -- read by the application -----------------------------------------------

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._events:
            if self.state is State.ENDED:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._wake.clear()
            await self._wake.wait()
        event = self._events.popleft()
        if self.state is State.PAUSED and len(self._events) <= self._buffer // 2:
            self._owner.drained(self)
        return event

    async def close(self) -> None:
        """Unsubscribe; the iteration ends once the events already received are read."""
        if self.state is not State.ENDED:
            await self._owner.unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
