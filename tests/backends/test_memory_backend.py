"""What the memory backend adds to the shared suite: ids whatever the clock does,
the history_bytes budget, and memory given back when rooms go."""

from __future__ import annotations

import gc
import tracemalloc

from roomchat.backends.memory import MemoryBackend, message_cost
from roomchat.core.message import Message
from roomchat.core.ports import BackendSettings
from roomchat.testing.backend_suite import RecordingSink
from tests.backends.test_sqlite_backend import SteppedClock


async def test_ids_keep_growing_when_the_clock_steps_back() -> None:
    clock = SteppedClock(2_000_000_000_000)
    backend = MemoryBackend("memory", BackendSettings(), clock=clock)
    await backend.start(RecordingSink())
    ahead = await backend.publish("r", "ann", "clock ahead")
    clock.ms = 1_800_000_000_000
    back = [await backend.publish("r", "ann", f"clock back {i}") for i in range(3)]
    assert [m.key for m in back] == sorted(m.key for m in back) and back[0].key > ahead.key
    assert back[0].time == "2027-01-15T08:00:00.000Z"  # the message's time is the clock's
    assert (await backend.replay("r", ahead.id)).messages == back


async def test_past_history_bytes_the_least_recently_active_rooms_lose_their_oldest_first() -> None:
    one = message_cost(_sized("x" * 100))
    backend = MemoryBackend("memory", BackendSettings(history=100, history_bytes=10 * one))
    sink = RecordingSink()
    await backend.start(sink)
    text = "x" * 100
    quiet = [await backend.publish("quiet", "ann", text) for _ in range(3)]
    busy = [await backend.publish("busy", "ann", text) for _ in range(3)]
    quiet.append(await backend.publish("quiet", "ann", text))
    busy += [await backend.publish("busy", "ann", text) for _ in range(5)]  # 12 messages: 2 too many
    assert await backend.history("busy", 100, None, None) == busy  # the room being posted to keeps all
    assert await backend.history("quiet", 100, None, None) == quiet[2:]  # the least recent lost 2
    gap = await backend.replay("quiet", quiet[0].id)
    assert not gap.found and gap.oldest_id == quiet[2].id  # resuming from a dropped id: a gap
    flood = [await backend.publish("flood", "ann", text) for _ in range(12)]
    assert await backend.rooms(10, None) == ["flood"]  # the others are gone altogether
    assert await backend.history("flood", 100, None, None) == flood[2:]
    assert await backend.last_ids(["quiet"]) == {"quiet": None}


def _sized(text: str) -> Message:
    return Message("1-0", "r", "ann", text, "2026-01-01T00:00:00.000Z")


async def test_deleted_rooms_give_their_memory_back() -> None:
    backend = MemoryBackend("memory", BackendSettings(history=10))
    await backend.start(_Discarding())
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        names = [f"room-{i}" for i in range(20_000)]
        for name in names:
            await backend.publish(name, "ann", "hello")
        full = tracemalloc.get_traced_memory()[0] - base
        for name in names:
            await backend.delete(name)
        del names
        gc.collect()
        left = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert await backend.rooms(10, None) == []
    assert left < full * 0.02, f"{left} bytes still held of {full}"


class _Discarding(RecordingSink):
    """Keeps nothing, so only the backend's own memory is measured."""

    def deleted(self, room_id: str) -> None:
        pass
