"""The in-memory backend: history and ids for one process."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from itertools import islice

from sortedcontainers import SortedList

from roomchat.backends.one_process import OneProcess
from roomchat.core.errors import Overloaded
from roomchat.core.ids import Clock, IdSequence, wall_ms
from roomchat.core.message import Message, format_time, id_key
from roomchat.core.ports import KEY_TTL, BackendSettings, BackendSink, Posted, Replay

# What one stored message holds besides its text, roughly: the object, its id,
# time and user strings, and the cache of its encodings (about twice the text).
MESSAGE_OVERHEAD = 480
SHRINK_AT = 4096  # rooms: below a quarter of the peak past this, the room table is rebuilt


def message_cost(message: Message) -> int:
    """Bytes of memory a stored message is counted for against `history_bytes`."""
    return MESSAGE_OVERHEAD + 3 * len(message.text) + len(message.user_id)


class MemoryBackend(OneProcess):
    """Keeps the last `history` messages of each room in this process.

    Ids are `<milliseconds>-<sequence>` like Redis stream ids, and never go
    back within the process whatever the clock does. Past `history_bytes`, the
    oldest messages of the least recently active rooms are dropped first.
    """

    def __init__(
        self, url: str = "memory", settings: BackendSettings | None = None, *, clock: Clock = wall_ms
    ) -> None:
        settings = settings or BackendSettings()
        if settings.history < 1:
            raise ValueError("history must be at least 1")
        if url not in ("memory", "memory://"):
            raise ValueError(f"the memory backend takes no address: use memory, not {url!r}")
        self._history = settings.history
        self._max_rooms = settings.max_rooms
        self._budget = settings.history_bytes
        self._bytes = 0
        # Least recently active first: where history_bytes drops messages from.
        # Each room's history is a list, not a deque: a deque takes a 64-slot
        # block (over 500 bytes, from malloc) even for one message.
        self._rooms: OrderedDict[str, list[Message]] = OrderedDict()
        self._peak_rooms = 0
        self._index: SortedList[str] = SortedList()  # room ids in order: pages without a sort
        self._subscribed: set[str] = set()
        self._ids = IdSequence(clock)
        # Idempotency keys by room: (userId, key) -> message, in the order stored; a
        # key is forgotten once its message has left history (or after KEY_TTL).
        self._keys: dict[str, dict[tuple[str, str], Message]] = {}
        self._sink: BackendSink | None = None

    async def start(self, sink: BackendSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        self._subscribed.clear()

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        return self._append(room_id, user_id, text)

    def _append(self, room_id: str, user_id: str, text: str) -> Message:
        """Store and broadcast one message; `publish` and `publish_once` share it, awaiting nothing."""
        room = self._rooms.get(room_id)
        if room is None:
            if self._max_rooms and len(self._rooms) >= self._max_rooms:
                raise Overloaded("too many rooms")
            room = self._rooms[room_id] = []
            self._index.add(room_id)
            self._peak_rooms = max(self._peak_rooms, len(self._rooms))
        else:
            self._rooms.move_to_end(room_id)
        (ms, seq), now = self._ids.next()
        message = Message(f"{ms}-{seq}", room_id, user_id, text, format_time(now))
        if len(room) >= self._history:
            self._bytes -= message_cost(room.pop(0))  # moves `history` pointers: cheap next to a post
        room.append(message)
        self._bytes += message_cost(message)
        if self._budget and self._bytes > self._budget:
            self._drop_oldest(keep=message)
        if room_id in self._subscribed and self._sink is not None:
            self._sink.message(message)
        return message

    def _drop_oldest(self, keep: Message) -> None:
        """Drop the oldest messages of the least recently active rooms until under budget."""
        while self._bytes > self._budget and self._rooms:
            room_id, room = next(iter(self._rooms.items()))
            drop = 0
            while drop < len(room) and self._bytes > self._budget and room[drop] is not keep:
                self._bytes -= message_cost(room[drop])
                drop += 1
            del room[:drop]
            if room:
                return  # only `keep` is left: the newest message always stays
            self._forget(room_id)

    async def publish_once(self, room_id: str, user_id: str, text: str, key: str) -> Posted:
        """`publish` plus one lookup and one store; atomic for free, as nothing here awaits.

        A key answers only while its message is still in history (and for at most
        KEY_TTL). Keys of messages that left are dropped in one sweep once they could
        outnumber the room's history, so no post pays for more than its own key.
        """
        keys = self._keys.get(room_id)
        slot = (user_id, key)
        if keys is not None:
            earlier = keys.get(slot)
            # Keys exist only for a room with history: room[0] is its oldest message.
            if (
                earlier is not None
                and earlier.key >= self._rooms[room_id][0].key
                and earlier.key[0] > (time.time() - KEY_TTL) * 1000
            ):
                return Posted(earlier, replayed=True)
        message = self._append(room_id, user_id, text)
        if keys is None:
            keys = self._keys[room_id] = {}
        keys[slot] = message
        if len(keys) > 2 * len(self._rooms[room_id]) + 8:
            self._forget_keys(room_id, keys)
        return Posted(message)

    def _forget_keys(self, room_id: str, keys: dict[tuple[str, str], Message]) -> None:
        """Drop the keys whose messages left history."""
        oldest = self._rooms[room_id][0].key
        self._keys[room_id] = {k: m for k, m in keys.items() if m.key >= oldest}

    async def replay(self, room_id: str, after: str) -> Replay:
        room = self._rooms.get(room_id, [])
        for index in range(len(room) - 1, -1, -1):
            if room[index].id == after:
                return Replay(room[index + 1 :], True)
        return Replay(room[:], False, room[0].id if room else None)

    async def history(self, room_id: str, limit: int, after: str | None, before: str | None) -> list[Message]:
        room = self._rooms.get(room_id, [])
        if after is not None:
            floor = id_key(after) or (0, 0)
            return [m for m in room if m.key > floor][:limit]
        if before is not None:
            ceiling = id_key(before) or (0, 0)
            room = [m for m in room if m.key < ceiling]
        return room[-limit:]

    async def last_ids(self, room_ids: Sequence[str]) -> dict[str, str | None]:
        rooms = self._rooms
        return {room_id: room[-1].id if (room := rooms.get(room_id)) else None for room_id in room_ids}

    async def rooms(self, limit: int, after: str | None) -> list[str]:
        names = self._index.irange(minimum=after, inclusive=(False, True)) if after else self._index
        return list(islice(names, limit))

    async def delete(self, room_id: str) -> None:
        if room_id in self._rooms:
            self._forget(room_id)
        if self._sink is not None:
            self._sink.deleted(room_id)

    def _forget(self, room_id: str) -> None:
        room = self._rooms.pop(room_id)
        self._keys.pop(room_id, None)
        self._bytes -= sum(message_cost(m) for m in room)
        self._index.remove(room_id)
        # A dict never shrinks by itself: after most rooms are gone its table
        # would keep their slots forever. Rebuild it smaller.
        if self._peak_rooms > SHRINK_AT and len(self._rooms) < self._peak_rooms // 4:
            self._rooms = OrderedDict(self._rooms)
            self._peak_rooms = len(self._rooms)

    async def subscribe(self, room_id: str) -> None:
        self._subscribed.add(room_id)

    def unsubscribe(self, room_id: str) -> None:
        self._subscribed.discard(room_id)

    async def ping(self) -> bool:
        return True
