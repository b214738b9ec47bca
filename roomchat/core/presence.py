"""Presence: who is listening to a room, across every process (contract: Presence).

Policy only. Each process counts its own listeners per room and user
(`opened`/`closed`), publishes that part through the backend (`ports.PresenceStore`)
at most once per window when it changed and again every heartbeat so it
never expires while the process lives, and reads the other processes' parts
back. Joins and leaves are found by comparing the set of users present now
with the set last announced, at most once per window per room: a user whose
last connection closes and who comes back inside the window was present at
both looks, so nothing is announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from roomchat.core.errors import BackendUnavailable
from roomchat.core.listener import Listener
from roomchat.core.message import Message, format_time

if TYPE_CHECKING:  # ports imports this module's types
    from roomchat.core.ports import PresenceStore

WINDOW = 1.0  # seconds: at most one presence event per room per window
HEARTBEAT = 5.0  # seconds between re-publishing this process's parts
EXPIRY_BEATS = 3  # a part lives this many heartbeats: a dead process's users leave within 4 beats + a window

log = logging.getLogger("roomchat.presence")


@dataclass(frozen=True, slots=True)
class PresencePart:
    """One process's part of one room's presence: what it publishes to the others."""

    users: Mapping[str, tuple[int, int]]  # userId -> (connections, since: ms since the epoch)
    anonymous: int = 0

    @property
    def listeners(self) -> int:
        return sum(count for count, _ in self.users.values()) + self.anonymous


@dataclass(frozen=True, slots=True)
class PresentUser:
    user_id: str
    connections: int
    since: int  # ms since the epoch: the earliest open connection on any process

    def to_dict(self) -> dict[str, object]:
        return {"userId": self.user_id, "connections": self.connections, "since": format_time(self.since)}


@dataclass(frozen=True, slots=True)
class RoomPresence:
    """Who is in a room: named users (by userId) and how many anonymous listeners."""

    room_id: str
    users: list[PresentUser]
    anonymous: int

    @property
    def listeners(self) -> int:
        return sum(u.connections for u in self.users) + self.anonymous

    def to_dict(self) -> dict[str, object]:
        return {
            "roomId": self.room_id,
            "users": [user.to_dict() for user in self.users],
            "anonymous": self.anonymous,
        }


def merge(room_id: str, parts: Iterable[PresencePart]) -> RoomPresence:
    """Every process's parts as one: connections add up, `since` is the earliest."""
    users: dict[str, tuple[int, int]] = {}
    anonymous = 0
    for part in parts:
        anonymous += part.anonymous
        for user, (count, since) in part.users.items():
            seen = users.get(user)
            users[user] = (count, since) if seen is None else (seen[0] + count, min(seen[1], since))
    present = [PresentUser(user, count, since) for user, (count, since) in sorted(users.items())]
    return RoomPresence(room_id, present, anonymous)


class PresenceNote(Message):
    """A presence event in a listener's buffer, shared by every listener of the room that asked.

    A Message so it rides the same buffer and encode-once cache; its `id` is
    empty, which is how writers tell it from a message (`isinstance` works too).
    """

    __slots__ = ("joined", "left")

    def __init__(self, room_id: str, joined: Sequence[str], left: Sequence[str]) -> None:
        super().__init__("", room_id, "", "", "")
        self.joined = tuple(joined)
        self.left = tuple(left)

    def to_data(self) -> dict[str, object]:
        """The event's data: `{"roomId", "joined", "left"}`."""
        return {"roomId": self.room_id, "joined": list(self.joined), "left": list(self.left)}


class _Room:
    """One room's presence in this process."""

    __slots__ = ("anonymous", "changed_at", "local", "looked", "remote", "shared", "shown", "stale",
                 "watchers")

    def __init__(self) -> None:
        # userId -> [connections, since]. A user at 0 stays until the next tick, so a
        # reconnect inside the window keeps its `since` and changes nothing.
        self.local: dict[str, list[int]] = {}
        self.anonymous = 0
        self.remote: list[PresencePart] = []  # the other processes' parts, as last read
        self.stale = True  # `remote` needs reading again
        self.looked = False  # the first read of the others' parts is done
        self.shared: PresencePart | None = None  # what this process last published
        self.shown: frozenset[str] | None = None  # users at the last announcement; None: not read yet
        self.watchers: dict[Listener, None] = {}  # listeners that asked for presence events
        self.changed_at: float | None = None  # loop time of the oldest change not yet ticked

    def part(self) -> PresencePart | None:
        """This process's part now, dropping users whose connections all closed."""
        for user in [u for u, (count, _) in self.local.items() if count == 0]:
            del self.local[user]
        if not self.local and not self.anonymous:
            return None
        return PresencePart({u: (c, s) for u, (c, s) in self.local.items()}, self.anonymous)

    def present(self) -> frozenset[str]:
        local = {user for user, (count, _) in self.local.items() if count}
        return frozenset(local.union(*(part.users for part in self.remote)))

    @property
    def idle(self) -> bool:
        return not self.local and not self.anonymous and not self.watchers and self.shared is None


class Presence:
    """Who is present in this process's rooms, and the joins and leaves of every process.

    One task does all of it, so presence holds at most one backend connection
    at a time and every room due at once shares one write and one read.
    """

    def __init__(
        self, store: PresenceStore, *, window: float = WINDOW, heartbeat: float = HEARTBEAT
    ) -> None:
        if window <= 0 or heartbeat <= 0:
            raise ValueError("the presence window and heartbeat must be positive")
        self._store = store
        self.window = window
        self.heartbeat = heartbeat
        self.ttl = heartbeat * EXPIRY_BEATS
        self._rooms: dict[str, _Room] = {}
        self._pending: set[str] = set()  # rooms with a change to tick or a first look to take
        self._poke = asyncio.Event()  # wakes the task early: a new room to look at
        self._runner: asyncio.Task[None] | None = None
        self._closing = False

    # -- this process's listeners -------------------------------------------------

    def opened(self, room_id: str, user_id: str | None) -> None:
        room = self._room(room_id)
        if user_id is None:
            room.anonymous += 1
        else:
            entry = room.local.get(user_id)
            if entry is None:
                room.local[user_id] = [1, time.time_ns() // 1_000_000]
            else:
                entry[0] += 1
        self._changed(room_id, room)

    def closed(self, room_id: str, user_id: str | None) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        if user_id is None:
            room.anonymous -= 1
        elif user_id in room.local:
            room.local[user_id][0] -= 1
        self._changed(room_id, room)

    def watch(self, room_id: str, listener: Listener) -> None:
        """Send `listener` this room's presence notes from now on."""
        self._room(room_id).watchers[listener] = None

    def unwatch(self, room_id: str, listener: Listener) -> None:
        room = self._rooms.get(room_id)
        if room is not None:
            room.watchers.pop(listener, None)

    def remote_changed(self, room_id: str) -> None:
        """Another process published a change to its part of the room."""
        room = self._rooms.get(room_id)
        if room is not None:
            room.stale = True
            self._changed(room_id, room)

    # -- questions ------------------------------------------------------------------

    async def room(self, room_id: str) -> RoomPresence:
        """The room's presence now: this process's own part, fresh from every other."""
        remote = (await self._store.presence([room_id])).get(room_id, [])
        return merge(room_id, [*self._local_parts(room_id), *remote])

    async def remote_listeners(self, room_ids: Sequence[str]) -> dict[str, int]:
        """Listeners on the other processes, by room (one read for them all)."""
        if not room_ids:
            return {}
        parts = await self._store.presence(room_ids)
        return {room_id: sum(p.listeners for p in parts.get(room_id, ())) for room_id in room_ids}

    def _local_parts(self, room_id: str) -> list[PresencePart]:
        room = self._rooms.get(room_id)
        if room is None:
            return []
        users = {u: (c, s) for u, (c, s) in room.local.items() if c}
        return [PresencePart(users, room.anonymous)]

    # -- the task: first looks, ticks, heartbeats ----------------------------------------

    def _room(self, room_id: str) -> _Room:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = _Room()
            self._pending.add(room_id)  # its first look, at once
            self._poke.set()
            if self._runner is None and not self._closing:
                self._runner = asyncio.ensure_future(self._run())
        return room

    def _changed(self, room_id: str, room: _Room) -> None:
        """A tick one window after the first change not yet ticked."""
        if room.changed_at is None:
            room.changed_at = asyncio.get_running_loop().time()
            self._pending.add(room_id)
            self._poke.set()  # the task may be asleep until the next heartbeat

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.heartbeat
        try:
            while self._rooms and not self._closing:
                now = loop.time()
                if now >= next_beat:
                    next_beat = now + self.heartbeat
                    await self._beat()
                    continue
                looks, due, wake_at = self._work(now)
                if looks or due:
                    if not await self._tick(looks, due):
                        await asyncio.sleep(self.window)  # the backend is down: not a busy loop
                    continue
                self._poke.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(wake_at, next_beat) - now):
                        await self._poke.wait()
        finally:
            self._runner = None

    def _work(self, now: float) -> tuple[list[str], list[str], float]:
        """Rooms to take a first look at, rooms due a tick, and when the next one falls due."""
        looks, due, wake_at = [], [], now + self.heartbeat
        for room_id in list(self._pending):
            room = self._rooms.get(room_id)
            if room is None:
                self._pending.discard(room_id)
                continue
            if not room.looked:
                looks.append(room_id)
            if room.changed_at is not None:
                if room.changed_at + self.window <= now:
                    due.append(room_id)
                else:
                    wake_at = min(wake_at, room.changed_at + self.window)
            if room.looked and room.changed_at is None:
                self._pending.discard(room_id)
        return looks, due, wake_at

    async def _tick(self, looks: list[str], due: list[str]) -> bool:
        """Publish the due rooms' parts that changed (one write), read what is needed (one read), announce.

        False when the backend failed: the due rooms are ticked again a window later.
        """
        rooms = self._rooms
        changed: dict[str, PresencePart | None] = {}
        for room_id in due:
            ticked = rooms[room_id]
            ticked.changed_at = None
            part = ticked.part()
            if part != ticked.shared:
                changed[room_id] = part
        reads = sorted(set(looks) | {r for r in due if rooms[r].stale})
        try:
            if changed:
                await self._store.share_presence(changed, self.ttl, True)
            fresh = await self._store.presence(reads) if reads else {}
        except BackendUnavailable as exc:  # try again a window from now
            log.debug("presence not shared: %s", exc)
            for room_id in due:
                if room_id in rooms:
                    rooms[room_id].stale = True
                    self._changed(room_id, rooms[room_id])
            return False
        for room_id in reads:
            room = rooms.get(room_id)
            if room is None:
                continue
            room.remote = fresh.get(room_id, [])
            room.stale = False
            if not room.looked:  # who the others have now: later joins and leaves count from here
                room.looked = True
                if room.shown is None:
                    room.shown = frozenset().union(*(part.users for part in room.remote))
        for room_id in due:
            room = rooms.get(room_id)
            if room is None:
                continue
            if room_id in changed:
                room.shared = changed[room_id]
            self._announce(room_id, room)
            if room.idle and room.changed_at is None:
                del rooms[room_id]
        return True

    def _announce(self, room_id: str, room: _Room) -> None:
        """Tell the watchers who joined and left since the last announcement."""
        if room.stale or room.shown is None:
            return  # the others' parts are unknown: say nothing rather than something wrong
        present = room.present()
        joined, left = sorted(present - room.shown), sorted(room.shown - present)
        room.shown = present
        if (joined or left) and room.watchers:
            note = PresenceNote(room_id, joined, left)  # one for all: encoded once per wire format
            for listener in room.watchers:
                listener.note(note)

    async def _beat(self) -> None:
        """Re-publish every part (one write for all rooms) and re-read the others' (one read)."""
        rooms = dict(self._rooms)
        shared = {room_id: room.shared for room_id, room in rooms.items() if room.shared is not None}
        try:
            if shared:
                await self._store.share_presence(shared, self.ttl, False)
            fresh = await self._store.presence(list(rooms))
        except BackendUnavailable as exc:
            log.debug("presence heartbeat failed: %s", exc)
            return
        for room_id, room in rooms.items():
            if self._rooms.get(room_id) is not room:
                continue
            room.remote = fresh.get(room_id, [])
            room.stale = False
            if room.shown is not None and room.present() != room.shown:
                self._changed(room_id, room)  # someone came or went (a dead process's users expired)

    async def close(self) -> None:
        """Withdraw this process's parts (its users leave at once, not at expiry)."""
        self._closing = True
        runner = self._runner
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        shared = {room_id: None for room_id, room in self._rooms.items() if room.shared is not None}
        self._rooms.clear()
        if shared:
            with contextlib.suppress(BackendUnavailable, TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._store.share_presence(shared, self.ttl, True)
