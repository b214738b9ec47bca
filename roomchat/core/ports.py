"""The ports: what adapters may ask of the room service (`Manager`) and what
the room service needs from storage and fan-out between processes (`Backend`)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from roomchat.core.listener import Listener
from roomchat.core.message import Message


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room_id: str
    listeners: int  # listeners in this process
    last_id: str | None

    def to_dict(self) -> dict[str, object]:
        return {"roomId": self.room_id, "listeners": self.listeners, "lastId": self.last_id}


@dataclass(frozen=True, slots=True)
class Replay:
    """What a backend answers to "everything after this id"."""

    messages: list[Message]
    found: bool  # the id was in history; if not, `messages` is all of history
    oldest_id: str | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    published: int
    delivered: int
    lagged: int
    listeners: dict[str, int] = field(default_factory=dict)  # by transport


class Manager(Protocol):
    """The one port every adapter uses. Raises ValidationError, BackendUnavailable."""

    def listen(
        self, room_id: str, after: str | None = None, *, transport: str = "unknown"
    ) -> AbstractAsyncContextManager[Listener]:
        """Open a listener on a room, replaying history after `after` first."""
        ...

    async def submit(self, room_id: str, user_id: str, text: str) -> Message:
        """Validate, store and broadcast; answer the stored message."""
        ...

    async def history(
        self, room_id: str, limit: int = 50, after: str | None = None, before: str | None = None
    ) -> list[Message]: ...

    async def room(self, room_id: str) -> RoomInfo: ...

    async def rooms(self) -> list[RoomInfo]: ...

    async def delete(self, room_id: str) -> None: ...

    async def healthy(self) -> bool: ...

    def stats(self) -> Stats: ...


class BackendSink(Protocol):
    """Where a backend delivers the rooms this process subscribed to."""

    def message(self, message: Message) -> None: ...

    def deleted(self, room_id: str) -> None: ...

    def interrupted(self, room_id: str) -> None:
        """The room's feed was lost: its listeners must resume from their last id."""
        ...


class Backend(Protocol):
    """Storage, ids and fan-out between processes. Raises BackendUnavailable."""

    async def start(self, sink: BackendSink) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        """Assign id and time, store in history, deliver to every subscribed node."""
        ...

    async def replay(self, room_id: str, after: str) -> Replay: ...

    async def history(
        self, room_id: str, limit: int, after: str | None, before: str | None
    ) -> list[Message]: ...

    async def last_id(self, room_id: str) -> str | None: ...

    async def rooms(self) -> list[str]:
        """Rooms that have history."""
        ...

    async def delete(self, room_id: str) -> None:
        """Drop the room's history and tell every node (sink.deleted)."""
        ...

    async def subscribe(self, room_id: str) -> None:
        """Feed this room's messages to the sink from now on."""
        ...

    def unsubscribe(self, room_id: str) -> None: ...

    async def ping(self) -> bool: ...
