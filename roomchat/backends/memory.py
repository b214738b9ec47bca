"""The in-memory backend: history and ids for one process."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence

from roomchat.core.errors import Overloaded
from roomchat.core.limits import TokenBuckets
from roomchat.core.message import Message, format_time, id_key
from roomchat.core.ports import BackendSettings, BackendSink, Replay
from roomchat.core.presence import PresencePart


class MemoryBackend:
    """Keeps the last `history` messages of each room in this process.

    Ids are `<milliseconds>-<sequence>` like Redis stream ids, so they keep
    growing across restarts and an id from before one is answered with a gap.
    """

    def __init__(self, url: str = "memory", settings: BackendSettings | None = None) -> None:
        settings = settings or BackendSettings()
        if settings.history < 1:
            raise ValueError("history must be at least 1")
        self._history = settings.history
        self._max_rooms = settings.max_rooms
        self._buckets = TokenBuckets()
        self._rooms: dict[str, deque[Message]] = {}
        self._subscribed: set[str] = set()
        self._last = (0, 0)
        self._sink: BackendSink | None = None

    async def start(self, sink: BackendSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        self._subscribed.clear()

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        room = self._rooms.get(room_id)
        if room is None:
            if self._max_rooms and len(self._rooms) >= self._max_rooms:
                raise Overloaded("too many rooms")
            room = self._rooms[room_id] = deque(maxlen=self._history)
        ms, seq = self._next_id()
        message = Message(f"{ms}-{seq}", room_id, user_id, text, format_time(ms))
        room.append(message)
        if room_id in self._subscribed and self._sink is not None:
            self._sink.message(message)
        return message

    def _next_id(self) -> tuple[int, int]:
        now = time.time_ns() // 1_000_000
        last_ms, last_seq = self._last
        self._last = (now, 0) if now > last_ms else (last_ms, last_seq + 1)
        return self._last

    async def replay(self, room_id: str, after: str) -> Replay:
        room = self._rooms.get(room_id, ())
        for index in range(len(room) - 1, -1, -1):
            if room[index].id == after:
                return Replay([room[i] for i in range(index + 1, len(room))], True)
        kept = list(room)
        return Replay(kept, False, kept[0].id if kept else None)

    async def history(
        self, room_id: str, limit: int, after: str | None, before: str | None
    ) -> list[Message]:
        room = list(self._rooms.get(room_id, ()))
        if after is not None:
            floor = id_key(after) or (0, 0)
            return [m for m in room if m.key > floor][:limit]
        if before is not None:
            ceiling = id_key(before) or (0, 0)
            room = [m for m in room if m.key < ceiling]
        return room[-limit:]

    async def last_id(self, room_id: str) -> str | None:
        room = self._rooms.get(room_id)
        return room[-1].id if room else None

    async def rooms(self, limit: int, after: str | None) -> list[str]:
        names = sorted(name for name, room in self._rooms.items() if room and (after is None or name > after))
        return names[:limit]

    async def spend(self, key: str, rate: float, burst: float) -> float:
        return self._buckets.spend(key, rate, burst)

    async def delete(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)
        if self._sink is not None:
            self._sink.deleted(room_id)

    async def subscribe(self, room_id: str) -> None:
        self._subscribed.add(room_id)

    def unsubscribe(self, room_id: str) -> None:
        self._subscribed.discard(room_id)

    async def ping(self) -> bool:
        return True

    # One process: no other process's presence to share with or read.

    async def share_presence(
        self, parts: Mapping[str, PresencePart | None], ttl: float, changed: bool
    ) -> None:
        return None

    async def presence(self, room_ids: Sequence[str]) -> dict[str, list[PresencePart]]:
        return {}
