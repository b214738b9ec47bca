"""Presence policy with fakes: no sockets. Windows are short so the tests run fast.

`SharedStore` stands in for a backend shared by several processes: each
`Presence` gets its own node of it, and a change one node shares is told to
the others as the Redis backend does (their `remote_changed`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence

import pytest

from roomchat.core import BackendUnavailable, Listener, RoomService, ValidationError
from roomchat.core.identity import Identity
from roomchat.core.listener import Counters
from roomchat.core.presence import Presence, PresenceNote, PresencePart
from tests.core.fakes import FakeBackend

WINDOW = 0.05
HEARTBEAT = 0.1


@pytest.fixture
async def service() -> AsyncIterator[RoomService]:
    svc = RoomService(FakeBackend(), presence_window=WINDOW, presence_heartbeat=HEARTBEAT)
    await svc.start()
    yield svc
    await svc.close()


async def next_note(listener: Listener, timeout: float = 5.0) -> PresenceNote:
    """The next item the listener takes, which must be a presence note."""
    assert await listener.wait(timeout), "no presence event came"
    batch = listener.take()
    assert len(batch) == 1 and isinstance(batch[0], PresenceNote), batch
    return batch[0]


def changes(note: PresenceNote) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return note.joined, note.left


async def test_users_joining_in_one_window_make_one_event(service: RoomService) -> None:
    async with service.listen("r", user_id="watcher", presence=True) as watcher:
        assert changes(await next_note(watcher)) == (("watcher",), ())
        async with service.listen("r", user_id="bob"), service.listen("r", user_id=" ann "):
            assert changes(await next_note(watcher)) == (("ann", "bob"), ())
        assert changes(await next_note(watcher)) == ((), ("ann", "bob"))


async def test_a_reconnect_inside_the_window_emits_nothing(service: RoomService) -> None:
    async with service.listen("r", user_id="watcher", presence=True) as watcher:
        await next_note(watcher)
        async with service.listen("r", user_id="ann"):
            assert changes(await next_note(watcher)) == (("ann",), ())
        async with service.listen("r", user_id="ann"):  # back at once
            await asyncio.sleep(3 * WINDOW)  # let every tick that could announce it pass
            async with service.listen("r", user_id="bob"):
                assert changes(await next_note(watcher)) == (("bob",), ())
        assert changes(await next_note(watcher)) == ((), ("ann", "bob"))


async def test_a_user_with_two_connections_leaves_when_both_close(service: RoomService) -> None:
    async with service.listen("r", user_id="watcher", presence=True) as watcher:
        await next_note(watcher)
        async with service.listen("r", user_id="ann"):
            async with service.listen("r", user_id="ann"):
                assert changes(await next_note(watcher)) == (("ann",), ())
                assert [(u.user_id, u.connections) for u in (await service.presence("r")).users] == [
                    ("ann", 2),
                    ("watcher", 1),
                ]
            await asyncio.sleep(3 * WINDOW)  # one tab closed: nothing to announce
            async with service.listen("r", user_id="bob"):
                assert changes(await next_note(watcher)) == (("bob",), ())
        assert changes(await next_note(watcher)) == ((), ("ann", "bob"))


async def test_anonymous_listeners_are_counted_never_named(service: RoomService) -> None:
    async with (
        service.listen("r", presence=True) as anonymous,
        service.listen("r"),
        service.listen("r", user_id="ann"),
    ):
        assert changes(await next_note(anonymous)) == (("ann",), ())
        found = await service.presence("r")
        assert [u.user_id for u in found.users] == ["ann"] and found.anonymous == 2
        assert (await service.room("r")).listeners == 3
        assert found.to_dict()["anonymous"] == 2


async def test_under_a_token_the_listener_is_its_subject() -> None:
    svc = RoomService(FakeBackend(), presence_window=WINDOW)
    await svc.start()
    try:
        ann = Identity(user_id="ann")
        async with svc.listen("r", identity=ann, user_id="somebody-else", presence=True) as listener:
            assert changes(await next_note(listener)) == (("ann",), ())
        tokenless = Identity(anonymous_read=True)
        async with svc.listen("r", identity=tokenless, user_id="bob"):
            assert (await svc.presence("r")).users == [] and (await svc.presence("r")).anonymous == 1
    finally:
        await svc.close()


async def test_a_bad_user_id_is_refused_before_the_stream_opens(service: RoomService) -> None:
    for bad in ("", "   ", "a\x00b", "x" * 65):
        with pytest.raises(ValidationError) as caught:
            async with service.listen("r", user_id=bad):
                pass
        assert caught.value.field == "userId"
    assert (await service.room("r")).listeners == 0


async def test_listeners_that_did_not_ask_get_no_presence_events(service: RoomService) -> None:
    async with service.listen("r", user_id="quiet") as quiet, service.listen("r", presence=True) as asks:
        assert changes(await next_note(asks)) == (("quiet",), ())
        posted = await service.submit("r", "ann", "hello")
        assert await quiet.wait(1) and quiet.take() == [posted]


async def test_a_note_never_moves_the_last_message_id(service: RoomService) -> None:
    async with service.listen("r", user_id="ann", presence=True) as listener:
        posted = await service.submit("r", "ann", "hello")
        await asyncio.sleep(3 * WINDOW)  # the join note lands after the message
        batch = listener.take()
        assert batch[0] == posted and isinstance(batch[-1], PresenceNote)
        assert listener.last_id == posted.id


async def test_one_note_is_shared_by_every_listener_that_asked(service: RoomService) -> None:
    async with (
        service.listen("r", presence=True) as one,
        service.listen("r", presence=True) as two,
        service.listen("r", user_id="ann"),
    ):
        assert await next_note(one) is await next_note(two)


# -- several processes over one store ----------------------------------------------------


class SharedStore:
    """Every process's parts of every room, with deadlines, like the Redis hash."""

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, tuple[float, PresencePart]]] = {}
        self.nodes: dict[str, Presence] = {}
        self.writes = 0

    def node(self, name: str) -> _Node:
        return _Node(self, name)


class _Node:
    def __init__(self, store: SharedStore, name: str) -> None:
        self.store = store
        self.name = name

    async def share_presence(
        self, parts: Mapping[str, PresencePart | None], ttl: float, changed: bool
    ) -> None:
        self.store.writes += 1
        for room_id, part in parts.items():
            room = self.store.parts.setdefault(room_id, {})
            if part is None:
                room.pop(self.name, None)
            else:
                room[self.name] = (time.monotonic() + ttl, part)
            if changed:
                for name, other in self.store.nodes.items():
                    if name != self.name:
                        other.remote_changed(room_id)

    async def presence(self, room_ids: Sequence[str]) -> dict[str, list[PresencePart]]:
        now = time.monotonic()
        answer: dict[str, list[PresencePart]] = {}
        for room_id in room_ids:
            parts = self.store.parts.get(room_id, {})
            live = [p for n, (d, p) in parts.items() if n != self.name and d > now]
            if live:
                answer[room_id] = live
        return answer


def presence_on(store: SharedStore, name: str) -> Presence:
    presence = store.nodes[name] = Presence(store.node(name), window=WINDOW, heartbeat=HEARTBEAT)
    return presence


def watcher() -> Listener:
    return Listener("r", "test", 100, Counters())


async def test_a_user_on_two_processes_leaves_when_gone_from_both() -> None:
    store = SharedStore()
    a, b = presence_on(store, "a"), presence_on(store, "b")
    on_a, on_b = watcher(), watcher()
    try:
        a.opened("r", None)
        a.watch("r", on_a)
        b.opened("r", None)
        b.watch("r", on_b)
        a.opened("r", "ann")
        assert changes(await next_note(on_b)) == (("ann",), ())
        assert changes(await next_note(on_a)) == (("ann",), ())
        b.opened("r", "ann")
        b.opened("r", "bob")
        assert changes(await next_note(on_a)) == (("bob",), ())
        assert [(u.user_id, u.connections) for u in (await a.room("r")).users] == [("ann", 2), ("bob", 1)]
        assert (await b.room("r")).anonymous == 2
        a.closed("r", "ann")
        b.closed("r", "bob")
        assert changes(await next_note(on_a)) == ((), ("bob",))  # ann is still on b
        b.closed("r", "ann")
        assert changes(await next_note(on_a)) == ((), ("ann",))
    finally:
        await a.close()
        await b.close()


async def test_a_dead_process_s_users_leave_when_its_part_expires() -> None:
    store = SharedStore()
    a, b = presence_on(store, "a"), presence_on(store, "b")
    on_a = watcher()
    try:
        a.opened("r", None)
        a.watch("r", on_a)
        b.opened("r", "bob")
        assert changes(await next_note(on_a)) == (("bob",), ())
        started = time.monotonic()
        b._closing = True  # b stops dead: no more heartbeats, nothing withdrawn
        assert b._runner is not None
        b._runner.cancel()
        assert changes(await next_note(on_a)) == ((), ("bob",))
        assert time.monotonic() - started < a.ttl + a.heartbeat + a.window + 1
    finally:
        await a.close()


async def test_heartbeats_write_once_per_beat_whatever_the_number_of_rooms() -> None:
    store = SharedStore()
    a = presence_on(store, "a")
    try:
        for i in range(50):
            a.opened(f"room{i}", f"user{i}")
        await asyncio.sleep(2 * WINDOW)
        before = store.writes
        await asyncio.sleep(5 * HEARTBEAT)
        assert 3 <= store.writes - before <= 6  # one write for all 50 rooms per heartbeat
    finally:
        await a.close()


class FlakyStore(SharedStore):
    """A shared store that can be down: every call raises, as a backend that cannot be reached."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def node(self, name: str) -> _Node:
        return _FlakyNode(self, name)


class _FlakyNode(_Node):
    store: FlakyStore

    async def share_presence(
        self, parts: Mapping[str, PresencePart | None], ttl: float, changed: bool
    ) -> None:
        self.store.calls += 1
        if self.store.down:
            raise BackendUnavailable("down")
        await super().share_presence(parts, ttl, changed)

    async def presence(self, room_ids: Sequence[str]) -> dict[str, list[PresencePart]]:
        self.store.calls += 1
        if self.store.down:
            raise BackendUnavailable("down")
        return await super().presence(room_ids)


async def test_a_backend_outage_is_waited_out_then_caught_up() -> None:
    store = FlakyStore()
    a, b = presence_on(store, "a"), presence_on(store, "b")
    on_a = watcher()
    try:
        a.opened("r", None)
        a.watch("r", on_a)
        b.opened("r", "bob")
        assert changes(await next_note(on_a)) == (("bob",), ())
        store.down = True
        b.opened("r", "cat")
        before = store.calls
        await asyncio.sleep(10 * WINDOW)
        assert store.calls - before < 30  # retried a window apart, not in a busy loop
        assert not await on_a.wait(0)  # nothing said while the others' parts are unknown
        store.down = False
        assert changes(await next_note(on_a)) == (("cat",), ())
    finally:
        await a.close()
        await b.close()


async def test_a_change_after_a_quiet_spell_is_announced_a_window_later_not_at_the_next_heartbeat() -> None:
    # A heartbeat far off: the presence task sleeps until it unless a change wakes it.
    service = RoomService(FakeBackend(), presence_window=WINDOW, presence_heartbeat=60.0)
    await service.start()
    try:
        async with service.listen("r", user_id="watcher", presence=True) as watcher:
            await next_note(watcher)
            await asyncio.sleep(3 * WINDOW)  # every tick done: the task sleeps
            started = time.monotonic()
            async with service.listen("r", user_id="ann"):
                assert changes(await next_note(watcher)) == (("ann",), ())
            assert time.monotonic() - started < 20 * WINDOW  # not a heartbeat (60 s) later
    finally:
        await service.close()
