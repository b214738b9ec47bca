"""The backend test suite: what every backend must do, the same on all of them.

roomchat runs it against memory, sqlite and redis; a plugin author runs it
against theirs (docs/backends.md):

    # conftest.py
    import pytest
    pytest.register_assert_rewrite("roomchat.testing")

    # test_my_backend.py
    import pytest
    from roomchat.testing.backend_suite import BackendCase, BackendSuite

    @pytest.fixture
    def backend_case(tmp_path):
        return BackendCase("mine://...", survives_restart=True)

    class TestMyBackend(BackendSuite):
        pass

The backend is found by its URL's scheme through the `roomchat.backends`
entry points, as `roomchat serve --backend` finds it. Needs pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from roomchat.backends import backend_from_url
from roomchat.core.errors import BackendUnavailable, Overloaded
from roomchat.core.message import Message, id_key
from roomchat.core.ports import Backend, BackendSettings


@dataclass(frozen=True)
class BackendCase:
    """One backend to test: its URL, and what it promises beyond the common part."""

    url: str
    survives_restart: bool = False  # history is still there when it is opened again
    cut: Callable[[], None] | None = None  # make the backend unreachable (None: it cannot be)
    restore: Callable[[], None] | None = None  # and reachable again


class RecordingSink:
    """Records what a backend feeds; `until` awaits a condition on it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.deleted_rooms: list[str] = []
        self.interrupted_rooms: list[str] = []
        self.presence_rooms: list[str] = []
        self._changed = asyncio.Event()

    def message(self, message: Message) -> None:
        self.messages.append(message)
        self._changed.set()

    def deleted(self, room_id: str) -> None:
        self.deleted_rooms.append(room_id)
        self._changed.set()

    def interrupted(self, room_id: str) -> None:
        self.interrupted_rooms.append(room_id)
        self._changed.set()

    def presence_changed(self, room_id: str) -> None:
        self.presence_rooms.append(room_id)
        self._changed.set()

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def opened(case: BackendCase, **settings: int) -> AsyncIterator[tuple[Backend, RecordingSink]]:
    """The case's backend, started with `settings` (BackendSettings fields), closed after."""
    backend = backend_from_url(case.url, BackendSettings(**settings))
    sink = RecordingSink()
    await backend.start(sink)
    try:
        yield backend, sink
    finally:
        await backend.close()


def _keys(messages: list[Message]) -> list[tuple[int, int]]:
    """Each message's id as a key; an id in no ordered form fails the test."""
    keys = [id_key(m.id) for m in messages]
    assert None not in keys, f"ids must be <number>-<number>: {[m.id for m in messages]}"
    return [key for key in keys if key is not None]


@pytest.mark.asyncio
class BackendSuite:
    """Subclass it in a test module that has a `backend_case` fixture."""

    async def test_ids_grow_and_history_pages(self, backend_case: BackendCase) -> None:
        async with opened(backend_case) as (backend, _):
            posted = [await backend.publish("lobby", "ann", f"m{i}") for i in range(10)]
            keys = _keys(posted)
            assert keys == sorted(keys) and len(set(keys)) == 10
            assert [(m.room_id, m.user_id, m.text) for m in posted] == [
                ("lobby", "ann", f"m{i}") for i in range(10)
            ]
            assert all(len(m.time) == 24 and m.time.endswith("Z") for m in posted)
            assert await backend.history("lobby", 3, None, None) == posted[-3:]
            assert await backend.history("lobby", 4, posted[2].id, None) == posted[3:7]
            assert await backend.history("lobby", 4, None, posted[2].id) == posted[:2]
            assert await backend.history("lobby", 50, posted[-1].id, None) == []
            assert await backend.history("nowhere", 50, None, None) == []
            assert await backend.last_ids(["lobby", "nowhere"]) == {"lobby": posted[-1].id, "nowhere": None}
            assert await backend.last_ids([]) == {}

    async def test_history_keeps_exactly_the_last_n(self, backend_case: BackendCase) -> None:
        async with opened(backend_case, history=5) as (backend, _):
            posted = [await backend.publish("r", "ann", f"m{i}") for i in range(20)]
            assert await backend.history("r", 50, None, None) == posted[-5:]
            assert await backend.history("r", 2, posted[0].id, None) == posted[15:17]
            assert await backend.history("r", 50, None, posted[-1].id) == posted[15:19]
            replay = await backend.replay("r", posted[0].id)
            if replay.found:  # still stored past the last N (Redis trims roughly): resumes with no loss
                assert replay.messages == posted[1:]
            else:
                assert replay.messages == posted[-5:] and replay.oldest_id == posted[15].id

    async def test_replay_resumes_or_answers_a_gap(self, backend_case: BackendCase) -> None:
        async with opened(backend_case) as (backend, _):
            posted = [await backend.publish("r", "ann", f"m{i}") for i in range(3)]
            resumed = await backend.replay("r", posted[0].id)
            assert resumed.found and resumed.messages == posted[1:]
            assert (await backend.replay("r", posted[-1].id)).messages == []
            ms, seq = posted[0].id.split("-")
            huge = "99999999999999999999999"
            for asked in ["1-0", f"0{ms}-{seq}", f"{huge}-1", f"5-{huge}", "x"]:
                replay = await backend.replay("r", asked)
                assert not replay.found and replay.messages == posted and replay.oldest_id == posted[0].id
            empty = await backend.replay("nowhere", "1-0")
            assert empty.messages == [] and not empty.found and empty.oldest_id is None
            assert await backend.history("r", 5, "99999999999999999999999-1", None) == []
            assert await backend.history("r", 5, None, "99999999999999999999999-1") == posted

    async def test_subscribed_rooms_are_fed_in_order_once(self, backend_case: BackendCase) -> None:
        async with opened(backend_case) as (backend, sink):
            await backend.subscribe("watched")
            await backend.subscribe("quiet")
            backend.unsubscribe("quiet")
            await backend.publish("quiet", "ann", "not fed")
            posted = await asyncio.gather(*(backend.publish("watched", "ann", f"m{i}") for i in range(50)))
            await sink.until(lambda: len(sink.messages) >= 50)
            assert sorted(sink.messages, key=lambda m: m.key) == sorted(posted, key=lambda m: m.key)
            assert _keys(sink.messages) == sorted(_keys(sink.messages))  # delivered in id order
            assert len(set(_keys(posted))) == 50

    async def test_delete_drops_history_and_later_ids_keep_growing(self, backend_case: BackendCase) -> None:
        async with opened(backend_case) as (backend, sink):
            await backend.subscribe("doomed")
            await backend.publish("keep", "ann", "stays")
            last = await backend.publish("doomed", "ann", "bye")
            await backend.delete("doomed")
            await sink.until(lambda: sink.deleted_rooms == ["doomed"])
            assert await backend.history("doomed", 50, None, None) == []
            assert await backend.last_ids(["doomed"]) == {"doomed": None}
            assert await backend.rooms(100, None) == ["keep"]
            assert not (await backend.replay("doomed", last.id)).found
            again = await backend.publish("doomed", "ann", "back")
            assert again.key > last.key
            assert await backend.rooms(100, None) == ["doomed", "keep"]
            await backend.delete("never-used")  # no error

    async def test_a_key_stores_once_and_answers_the_first_message(self, backend_case: BackendCase) -> None:
        async with opened(backend_case) as (backend, sink):
            await backend.subscribe("r")
            first = await backend.publish_once("r", "ann", "once", "k1")
            again = await backend.publish_once("r", "ann", "a retry, maybe changed", "k1")
            assert not first.replayed and again.replayed and again.message == first.message
            other_user = await backend.publish_once("r", "bob", "mine", "k1")
            other_room = await backend.publish_once("s", "ann", "there", "k1")
            assert not other_user.replayed and not other_room.replayed
            await sink.until(lambda: len(sink.messages) >= 2)
            assert await backend.history("r", 50, None, None) == [first.message, other_user.message]
            assert [m.text for m in sink.messages] == ["once", "mine"]  # the retry was not delivered

    async def test_rooms_are_paged_by_id(self, backend_case: BackendCase) -> None:
        async with opened(backend_case) as (backend, _):
            names = [f"room-{i:03d}" for i in range(25)]
            for name in reversed(names):
                await backend.publish(name, "ann", "x")
            assert await backend.rooms(10, None) == names[:10]
            assert await backend.rooms(10, names[9]) == names[10:20]
            assert await backend.rooms(10, names[19]) == names[20:]
            assert await backend.rooms(10, names[-1]) == []
            assert await backend.rooms(3, "room-0105") == names[11:14]  # `after` need not be a room

    async def test_max_rooms_refuses_a_new_room_only(self, backend_case: BackendCase) -> None:
        async with opened(backend_case, max_rooms=3) as (backend, _):
            for name in ("a", "b", "c"):
                await backend.publish(name, "ann", "x")
            with pytest.raises(Overloaded, match="too many rooms"):
                await backend.publish("d", "ann", "x")
            await backend.publish("a", "ann", "an existing room still takes posts")
            await backend.delete("b")
            await backend.publish("d", "ann", "a freed slot")
            assert await backend.rooms(10, None) == ["a", "c", "d"]

    async def test_spend_is_a_token_bucket(self, backend_case: BackendCase) -> None:
        async with opened(backend_case) as (backend, _):
            assert await backend.spend("ann", 1.0, 2.0) == 0.0
            assert await backend.spend("ann", 1.0, 2.0) == 0.0
            wait = await backend.spend("ann", 1.0, 2.0)
            assert 0.0 < wait <= 1.0
            assert await backend.spend("bob", 1.0, 2.0) == 0.0  # one bucket per key

    async def test_ids_are_never_reused_across_a_restart(self, backend_case: BackendCase) -> None:
        async with opened(backend_case) as (backend, _):
            before = [await backend.publish("r", "ann", f"m{i}") for i in range(3)]
        await asyncio.sleep(0.002)  # a real restart takes more than the millisecond of a clock-based id
        async with opened(backend_case) as (backend, _):
            after = await backend.publish("r", "ann", "after the restart")
            assert after.key > before[-1].key
            replay = await backend.replay("r", before[0].id)
            if backend_case.survives_restart:
                assert replay.found and replay.messages == [*before[1:], after]
            else:  # gone with the process: a gap, never the wrong messages
                assert not replay.found and replay.messages == [after]

    async def test_an_outage_is_unavailable_then_recovers(self, backend_case: BackendCase) -> None:
        if backend_case.cut is None or backend_case.restore is None:
            pytest.skip("this backend cannot become unreachable")
        async with opened(backend_case) as (backend, sink):
            await backend.subscribe("r")
            await backend.publish("r", "ann", "before")
            backend_case.cut()
            with pytest.raises(BackendUnavailable):
                await backend.publish("r", "ann", "lost")
            assert not await backend.ping()
            await sink.until(lambda: "r" in sink.interrupted_rooms)
            backend_case.restore()
            deadline = time.monotonic() + 10
            while not await backend.ping():
                assert time.monotonic() < deadline, "the backend did not come back"
                await asyncio.sleep(0.05)
            await backend.subscribe("r")
            back = await backend.publish("r", "ann", "after")
            await sink.until(lambda: back in sink.messages)
