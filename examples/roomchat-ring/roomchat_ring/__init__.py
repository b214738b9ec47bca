"""roomchat-ring: a worked example of a roomchat backend (docs/backends.md).

`roomchat serve --backend ring://` keeps each room's last N messages in a ring
in this process: one process, nothing kept across a restart, like `memory`,
in as few lines as the Backend port allows.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Sequence

from roomchat.backends.one_process import OneProcess
from roomchat.core import BackendSink, Message
from roomchat.core.errors import Overloaded
from roomchat.core.message import format_time
from roomchat.core.ports import BackendSettings, Posted, Replay


class RingBackend(OneProcess):
    """The factory `roomchat.backends` names: called with the URL and the settings.

    One process uses it, so it inherits rate buckets and presence kept in this
    process (`OneProcess`) and writes only history and keys.
    """

    def __init__(self, url: str, settings: BackendSettings) -> None:
        if url not in ("ring", "ring://"):  # refuse what you cannot use, before any I/O
            raise ValueError(f"the ring backend takes ring://, got {url!r}")
        self.settings = settings
        self.rings: dict[str, deque[Message]] = {}
        self.names: list[str] = []  # room ids in order, for pages of rooms
        self.subscribed: set[str] = set()
        self.keys: dict[tuple[str, str, str], Message] = {}  # (room, user, key) -> the first post
        self.sink: BackendSink | None = None
        # Ids are `<start ms>-<counter>`: they only grow within the process and
        # start above the last run's, as long as the clock does not go back.
        self.start_ms = time.time_ns() // 1_000_000
        self.counter = 0

    async def start(self, sink: BackendSink) -> None:
        self.sink = sink  # where messages of subscribed rooms, and deletions, go

    async def close(self) -> None:
        self.subscribed.clear()

    async def ping(self) -> bool:
        return True  # nothing to reach; a networked backend says whether it can

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        ring = self.rings.get(room_id)
        if ring is None:
            if self.settings.max_rooms and len(self.rings) >= self.settings.max_rooms:
                raise Overloaded("too many rooms")
            ring = self.rings[room_id] = deque(maxlen=self.settings.history)
            bisect.insort(self.names, room_id)
        self.counter += 1
        now = time.time_ns() // 1_000_000
        message = Message(f"{self.start_ms}-{self.counter}", room_id, user_id, text, format_time(now))
        ring.append(message)  # stored before it is answered or delivered
        if room_id in self.subscribed and self.sink is not None:
            self.sink.message(message)  # never awaits: the sink only queues
        return message

    async def publish_once(self, room_id: str, user_id: str, text: str, key: str) -> Posted:
        """`publish`, unless this user already posted with this key in this room:
        then nothing is stored or delivered and the first message is the answer.
        Nothing awaits between the look-up and the store, so it is atomic here;
        a networked backend does both in one transaction or script."""
        earlier = self.keys.get((room_id, user_id, key))
        if earlier is not None and room_id in self.rings and earlier in self.rings[room_id]:
            return Posted(earlier, replayed=True)
        message = await self.publish(room_id, user_id, text)
        self.keys[(room_id, user_id, key)] = message  # a real backend also expires them (KEY_TTL)
        return Posted(message)

    async def replay(self, room_id: str, after: str) -> Replay:
        kept = list(self.rings.get(room_id, ()))
        for index, message in enumerate(kept):
            if message.id == after:
                return Replay(kept[index + 1 :], found=True)
        return Replay(kept, found=False, oldest_id=kept[0].id if kept else None)

    async def history(self, room_id: str, limit: int, after: str | None, before: str | None) -> list[Message]:
        kept = list(self.rings.get(room_id, ()))
        if after is not None:
            return [m for m in kept if m.key > _key(after)][:limit]
        if before is not None:
            kept = [m for m in kept if m.key < _key(before)]
        return kept[-limit:]

    async def last_ids(self, room_ids: Sequence[str]) -> dict[str, str | None]:
        return {room_id: ring[-1].id if (ring := self.rings.get(room_id)) else None for room_id in room_ids}

    async def rooms(self, limit: int, after: str | None) -> list[str]:
        start = bisect.bisect_right(self.names, after) if after is not None else 0
        return self.names[start : start + limit]

    async def delete(self, room_id: str) -> None:
        if self.rings.pop(room_id, None) is not None:
            self.names.remove(room_id)
            self.keys = {k: m for k, m in self.keys.items() if k[0] != room_id}
        if self.sink is not None:
            self.sink.deleted(room_id)

    async def subscribe(self, room_id: str) -> None:
        self.subscribed.add(room_id)

    def unsubscribe(self, room_id: str) -> None:
        self.subscribed.discard(room_id)


def _key(message_id: str) -> tuple[int, int]:
    """Where an id sorts: the service validated it as `<number>-<number>`."""
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq)
