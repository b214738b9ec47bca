"""What the memory backend adds to the shared suite: ids whatever the clock does,
the history_bytes budget, and memory given back when rooms go."""

from __future__ import annotations

import gc
import tracemalloc

from roomchat.backends.memory import MemoryBackend
from roomchat.core.idempotency import KEY_COST, KEY_TTL_MS
from roomchat.core.ids import SPAN, IdSequence
from roomchat.core.message import Ledger, Message, to_json
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
    ledger = Ledger()
    ledger.store(_sized("x" * 100))
    one = ledger.bytes
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


async def test_a_restart_with_the_clock_stepped_back_gives_no_id_of_an_earlier_run() -> None:
    clock = SteppedClock(2_000_000_000_000)
    issued: set[str] = set()
    for boot in range(20):  # each boot starts at the same millisecond: the clock went back each time
        clock.ms = 2_000_000_000_000
        backend = MemoryBackend("memory", BackendSettings(), clock=clock)
        await backend.start(RecordingSink())
        posted = [await backend.publish("r", "ann", f"boot {boot}") for _ in range(3)]
        assert [m.key for m in posted] == sorted(m.key for m in posted)  # still growing within the run
        assert not issued & {m.id for m in posted}, "a restart gave an id of an earlier run"
        old = next(iter(issued), None)
        if old is not None:  # resuming from the last run's id: a gap, never this run's messages
            replay = await backend.replay("r", old)
            assert not replay.found and replay.messages == posted
        issued |= {m.id for m in posted}
        await backend.close()


async def test_a_millisecond_past_its_sequence_range_takes_the_next_one() -> None:
    clock = SteppedClock(2_000_000_000_000)
    ids = IdSequence(clock, base=5 * SPAN)
    given = [ids.next()[0] for _ in range(SPAN + 2)]  # the clock never moves
    assert given == sorted(given) and len(set(given)) == len(given)
    assert given[SPAN - 1] == (2_000_000_000_000, 6 * SPAN - 1)
    assert given[SPAN] == (2_000_000_000_001, 5 * SPAN)


async def test_a_full_history_gives_the_garbage_collector_nothing_to_walk() -> None:
    backend = MemoryBackend("memory", BackendSettings(history=200, history_bytes=0))
    await backend.start(_Discarding())
    gc.collect()
    before = len(gc.get_objects())
    for room in range(20):
        for i in range(200):
            message = await backend.publish(f"room-{room}", "ann", f"message {i}")
            message.encode(to_json)
    del message
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # not 2 per message (4,000 messages)
    replayed = (await backend.replay("room-3", "1-0")).messages
    history = await backend.history("room-3", 200, None, None)
    assert [m.encode(to_json) for m in replayed] == [m.encode(to_json) for m in history]
    assert all(a.encode(to_json) is b.encode(to_json) for a, b in zip(replayed, history, strict=True))


async def test_idempotency_keys_are_dropped_once_expired_and_bounded() -> None:
    clock = SteppedClock(2_000_000_000_000)
    limit = 50
    settings = BackendSettings(history=10, history_bytes=4 * KEY_COST * limit)
    backend = MemoryBackend("memory", settings, clock=clock)
    await backend.start(_Discarding())
    posted = [await backend.publish_once("r", "ann", "x", f"k{i}") for i in range(3 * limit)]
    assert len(backend._keys) <= limit + 1  # the oldest went first
    newest = await backend.publish_once("r", "ann", "x", f"k{3 * limit - 1}")
    assert newest.replayed and newest.message == posted[-1].message
    oldest = await backend.publish_once("r", "ann", "x", "k0")
    assert not oldest.replayed  # past the bound, forgotten: documented in docs/backends.md
    clock.ms += KEY_TTL_MS + 1
    await backend.publish_once("r", "ann", "x", "after a day")
    assert len(backend._keys) == 1  # every expired key dropped


async def test_the_history_budget_counts_encodings_and_real_text_size() -> None:
    texts = {"ascii": "x" * 4096, "2-byte": "\u4f60" * 4096, "4-byte": "\U0001f600" * 4096}
    costs = {}
    for name, text in texts.items():
        backend = MemoryBackend("memory", BackendSettings(history_bytes=0))
        await backend.start(_Discarding())
        message = await backend.publish("r", "ann", text)
        plain = backend.history_bytes
        message.encode(to_json)
        assert backend.history_bytes - plain >= len(message.encode(to_json))  # counted as made
        costs[name] = backend.history_bytes
        await backend.delete("r")
        assert backend.history_bytes == 0  # and given back whole
    assert costs["4-byte"] > 4 * 4096 * 3  # the str (4 bytes a char), its UTF-8 copy, the JSON
    assert costs["2-byte"] > 2 * 4096 + 3 * 4096 * 2
