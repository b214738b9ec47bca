"""The in-memory backend: history and ids for one process."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from itertools import islice

from sortedcontainers import SortedList

from roomchat.backends.one_process import OneProcess
from roomchat.core.errors import Overloaded
from roomchat.core.idempotency import KEY_COST, KeptKeys, replayed
from roomchat.core.ids import Clock, IdSequence, boot_range, wall_ms
from roomchat.core.message import Ledger, Message, Stored, format_time, id_key, stored_id, stored_key
from roomchat.core.ports import BackendSettings, BackendSink, Posted, Replay

SHRINK_AT = 4096  # rooms: below a quarter of the peak past this, the room table is rebuilt
KEYS_WITHOUT_BUDGET = 1_000_000  # idempotency keys kept at most when history_bytes is off


class MemoryBackend(OneProcess):
    """Keeps the last `history` messages of each room in this process.

    Ids are `<milliseconds>-<sequence>` like Redis stream ids, and never go
    back within the process whatever the clock does; each boot takes its
    sequence numbers from a random range of its own, so a restart with the
    clock stepped back gives no id of an earlier run. Past `history_bytes`
    (every stored message counted at what it holds, encodings included; see
    Ledger), the oldest messages of the least recently active rooms are dropped
    first. Messages are kept as `Stored` dicts, which the garbage collector does
    not track, so a full history costs a collection nothing.
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
        self._ledger = Ledger()
        # Least recently active first: where history_bytes drops messages from.
        # Each room's history is a list, not a deque: a deque takes a 64-slot
        # block (over 500 bytes, from malloc) even for one message.
        self._rooms: OrderedDict[str, list[Stored]] = OrderedDict()
        self._peak_rooms = 0
        self._index: SortedList[str] = SortedList()  # room ids in order: pages without a sort
        self._subscribed: set[str] = set()
        self._clock = clock
        self._ids = IdSequence(clock, base=boot_range())
        # Idempotency keys for 24 h, whatever becomes of their messages; a quarter of
        # history_bytes at most (about 200,000 keys at the default 256 MiB).
        self._keys = KeptKeys(self._budget // 4 // KEY_COST if self._budget else KEYS_WITHOUT_BUDGET)
        self._sink: BackendSink | None = None

    @property
    def history_bytes(self) -> int:
        """Bytes of memory the stored messages hold now, as counted against `history_bytes`."""
        return self._ledger.bytes

    async def start(self, sink: BackendSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        self._subscribed.clear()

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        return self._append(room_id, user_id, text)[0]

    def _append(self, room_id: str, user_id: str, text: str) -> tuple[Message, int]:
        """Store and broadcast one message, awaiting nothing: the message and its time in ms."""
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
            self._ledger.release(room.pop(0))  # moves `history` pointers: cheap next to a post
        room.append(self._ledger.store(message))
        if self._budget and self._ledger.bytes > self._budget:
            self._drop_oldest(keep=room[-1])
        if room_id in self._subscribed and self._sink is not None:
            self._sink.message(message)
        return message, now

    def _drop_oldest(self, keep: Stored) -> None:
        """Drop the oldest messages of the least recently active rooms until under budget."""
        ledger = self._ledger
        while ledger.bytes > self._budget and self._rooms:
            room_id, room = next(iter(self._rooms.items()))
            drop = 0
            while drop < len(room) and ledger.bytes > self._budget and room[drop] is not keep:
                ledger.release(room[drop])
                drop += 1
            del room[:drop]
            if room:
                return  # only `keep` is left: the newest message always stays
            self._forget(room_id)

    async def publish_once(self, room_id: str, user_id: str, text: str, key: str) -> Posted:
        """`publish` plus one lookup and one store; atomic for free, as nothing here awaits.

        A key answers for 24 hours, also once its message has left history
        (roomchat.core.idempotency says how).
        """
        now = self._clock()
        self._keys.prune(now)
        slot = self._keys.slot(room_id, user_id, key)
        kept = self._keys.get(slot, now)
        if kept is not None:
            return Posted(replayed(self._find(room_id, kept.message_key), room_id, user_id, text, kept), True)
        message, time_ms = self._append(room_id, user_id, text)
        self._keys.put(slot, message, time_ms)
        return Posted(message)

    def _find(self, room_id: str, key: tuple[int, int]) -> Message | None:
        """The message with this id key, if the room's history still holds it."""
        room = self._rooms.get(room_id, [])
        index = bisect_left(room, key, key=stored_key)
        if index < len(room) and stored_key(room[index]) == key:
            return Message.restored(room_id, room[index], self._ledger)
        return None

    def _messages(self, room_id: str, stored: list[Stored]) -> list[Message]:
        ledger = self._ledger
        return [Message.restored(room_id, s, ledger) for s in stored]

    async def replay(self, room_id: str, after: str) -> Replay:
        room = self._rooms.get(room_id, [])
        for index in range(len(room) - 1, -1, -1):
            if stored_id(room[index]) == after:
                return Replay(self._messages(room_id, room[index + 1 :]), True)
        return Replay(self._messages(room_id, room), False, stored_id(room[0]) if room else None)

    async def history(self, room_id: str, limit: int, after: str | None, before: str | None) -> list[Message]:
        room = self._rooms.get(room_id, [])
        if after is not None:
            start = bisect_right(room, id_key(after) or (0, 0), key=stored_key)
            return self._messages(room_id, room[start : start + limit])
        end = len(room) if before is None else bisect_left(room, id_key(before) or (0, 0), key=stored_key)
        return self._messages(room_id, room[max(0, end - limit) : end])

    async def last_ids(self, room_ids: Sequence[str]) -> dict[str, str | None]:
        rooms = self._rooms
        newest = {room_id: rooms.get(room_id) for room_id in room_ids}
        return {room_id: stored_id(room[-1]) if room else None for room_id, room in newest.items()}

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
        for stored in room:
            self._ledger.release(stored)
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
