"""The ports: what adapters may ask of the room service (`Manager`) and what
the room service needs from storage and fan-out between processes (`Backend`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from roomchat.core.identity import Identity
from roomchat.core.limits import DEFAULT_HISTORY_BYTES, DEFAULT_MAX_ROOMS
from roomchat.core.listener import Listener
from roomchat.core.message import Message
from roomchat.core.presence import PresencePart, RoomPresence

DEFAULT_HISTORY = 1000
KEY_TTL = 24 * 3600  # seconds an idempotency key answers its first message


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room_id: str
    listeners: int
    last_id: str | None

    def to_dict(self) -> dict[str, object]:
        return {"roomId": self.room_id, "listeners": self.listeners, "lastId": self.last_id}


@dataclass(frozen=True, slots=True)
class RoomPage:
    """One page of the room list, by room id; `next` is the `after` of the next page."""

    rooms: list[RoomInfo]
    next: str | None

    def to_dict(self) -> dict[str, object]:
        return {"rooms": [info.to_dict() for info in self.rooms], "next": self.next}


@dataclass(frozen=True, slots=True)
class Replay:
    """What a backend answers to "everything after this id"."""

    messages: list[Message]
    found: bool  # the id was in history; if not, `messages` is all of history
    oldest_id: str | None = None


@dataclass(frozen=True, slots=True)
class Posted:
    """What a post with an idempotency key answers.

    `replayed`: an earlier post by the same user in the same room with the same
    key stored `message`; this one stored and broadcast nothing.
    """

    message: Message
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """The publish hook's answer: store the post (with `text` instead, when given) or refuse it."""

    allow: bool
    text: str | None = None
    reason: str = ""


class PublishHook(Protocol):
    """Asked before a post is stored, on every transport (contract: Publish hook).

    Raises HookUnavailable when it cannot answer in time; nothing is stored then.
    `target` names the message an edit changes (None for a post).
    """

    async def check(self, room_id: str, user_id: str, text: str, target: str | None = None) -> Verdict: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Stats:
    published: int
    delivered: int
    lagged: int
    listeners: dict[str, int] = field(default_factory=dict)  # by transport


class Manager(Protocol):
    """The one port every adapter uses.

    Raises ValidationError, BackendUnavailable, Unauthenticated, Forbidden,
    RateLimited and Overloaded; adapters translate them at the edge. Every call
    takes the caller's `identity` from `identify`; None is a caller with no
    token and no known address (under `--auth none` that may still do anything).
    """

    def identify(self, token: str | None, address: str | None = None) -> Identity:
        """Who a request's token (or its absence) is; Unauthenticated for a bad or expired one."""
        ...

    def listen(
        self,
        room_id: str,
        after: str | None = None,
        *,
        transport: str = "unknown",
        identity: Identity | None = None,
        user_id: str | None = None,
        presence: bool = False,
    ) -> AbstractAsyncContextManager[Listener]:
        """Open a listener on a room, replaying history after `after` first.

        It ends with EndReason.EXPIRED when the identity's token expires.
        `user_id` names the listener in the room's presence (validated like any
        userId; under `--auth jwt` the token's `sub` is used instead; None:
        anonymous, counted but not named). With `presence=True` the listener
        also takes `PresenceNote`s (roomchat.core.presence) between messages.
        """
        ...

    async def submit(
        self, room_id: str, user_id: str | None, text: str, *, identity: Identity | None = None
    ) -> Message:
        """Validate, check, store and broadcast; answer the stored message.

        `user_id` may be None when the identity names the user (a token's `sub`).
        """
        ...

    async def submit_once(
        self,
        room_id: str,
        user_id: str | None,
        text: str,
        *,
        key: str | None,
        identity: Identity | None = None,
    ) -> Posted:
        """`submit`, exactly once per idempotency `key` (contract: Publishing exactly once).

        A second post with the same key by the same user in the same room within
        24 hours stores and broadcasts nothing and answers the first message
        (`replayed`), also when the first one's answer was lost. `key=None` is `submit`.
        """
        ...

    async def history(
        self,
        room_id: str,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        *,
        identity: Identity | None = None,
    ) -> list[Message]: ...

    async def room(self, room_id: str, *, identity: Identity | None = None) -> RoomInfo: ...

    async def presence(self, room_id: str, *, identity: Identity | None = None) -> RoomPresence:
        """Who is listening to the room, on every process sharing the backend."""
        ...

    async def rooms(
        self, limit: int = 100, after: str | None = None, *, identity: Identity | None = None
    ) -> RoomPage:
        """A page of the rooms that have listeners or history, by room id."""
        ...

    async def delete(self, room_id: str, *, identity: Identity | None = None) -> None: ...

    async def healthy(self) -> bool: ...

    def stats(self) -> Stats: ...


class BackendSink(Protocol):
    """Where a backend delivers the rooms this process subscribed to."""

    def message(self, message: Message) -> None: ...

    def deleted(self, room_id: str) -> None: ...

    def interrupted(self, room_id: str) -> None:
        """The room's feed was lost: its listeners must resume from their last id."""
        ...

    def presence_changed(self, room_id: str) -> None:
        """Another process published a change to its part of the room's presence."""
        ...


@dataclass(frozen=True, slots=True)
class BackendSettings:
    """What every backend is built with, whatever its URL."""

    history: int = DEFAULT_HISTORY  # messages kept per room
    max_rooms: int = DEFAULT_MAX_ROOMS  # rooms with history; 0: no limit
    history_bytes: int = DEFAULT_HISTORY_BYTES  # bytes of history in one process; 0: no limit


class RoomLog(Protocol):
    """History and fan-out: the part of a backend every backend writes itself.

    Ids are `<number>-<number>` (the service orders them to join a replay to
    the live feed), strictly increasing within a room in the order messages
    are delivered, and never given twice, across restarts included.
    `publish` raises Overloaded("too many rooms") rather than add a room past
    `max_rooms`. Every method may raise BackendUnavailable.
    """

    async def start(self, sink: BackendSink) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        """Assign id and time, store in history, deliver to every subscribed node."""
        ...

    async def replay(self, room_id: str, after: str) -> Replay: ...

    async def history(
        self, room_id: str, limit: int, after: str | None, before: str | None
    ) -> list[Message]: ...

    async def last_ids(self, room_ids: Sequence[str]) -> dict[str, str | None]:
        """Each room's newest id (None: no history), in one round trip for them all."""
        ...

    async def rooms(self, limit: int, after: str | None) -> list[str]:
        """Up to `limit` rooms that have history, by room id, after `after` (exclusive)."""
        ...

    async def delete(self, room_id: str) -> None:
        """Drop the room's history and tell every node (sink.deleted)."""
        ...

    async def subscribe(self, room_id: str) -> None:
        """Feed this room's messages to the sink from now on."""
        ...

    def unsubscribe(self, room_id: str) -> None: ...


class KeyedPosts(Protocol):
    """Idempotency keys (contract: Publishing exactly once), stored with the post."""

    async def publish_once(self, room_id: str, user_id: str, text: str, key: str) -> Posted:
        """`publish`, unless `key` is stored for this user and room: then answer that message.

        The key and the message are stored together (atomically), so a post whose
        answer was lost is never stored twice, whichever process gets the retry.
        Keys live at most KEY_TTL seconds; a backend may forget one sooner once
        its message has left history.
        """
        ...


class RateBuckets(Protocol):
    """The post rate's token buckets; a backend shared by several processes shares them.

    One-process default: roomchat.backends.one_process.OneProcessBuckets.
    """

    async def spend(self, key: str, rate: float, burst: float) -> float:
        """Take one token from `key`'s bucket (refilled at `rate`/s up to `burst`).

        0.0 if there was one; else the seconds until there is, and nothing is taken.
        """
        ...


class PresenceStore(Protocol):
    """Each process's part of each room's presence, shared with the others.

    One-process default: roomchat.backends.one_process.OneProcessPresence.
    """

    async def share_presence(
        self, parts: Mapping[str, PresencePart | None], ttl: float, changed: bool
    ) -> None:
        """Publish this process's part of each room's presence, valid for `ttl` seconds.

        None withdraws it. One write for all the rooms given. `changed`: tell the
        other processes (their sinks' `presence_changed`); a heartbeat does not.
        """
        ...

    async def presence(self, room_ids: Sequence[str]) -> dict[str, list[PresencePart]]:
        """The other processes' unexpired parts of these rooms (one read for them all)."""
        ...


class Backend(RoomLog, KeyedPosts, RateBuckets, PresenceStore, Protocol):
    """Everything the room service needs of storage and of the other processes.

    Found by URL scheme through the entry points `roomchat.backends`
    (docs/backends.md); the factory is called as `(url, settings)`. A backend
    that one process uses writes `RoomLog` and `KeyedPosts` and inherits the
    rest from roomchat.backends.one_process.OneProcess.
    """
