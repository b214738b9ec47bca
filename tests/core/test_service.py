"""The room service with a fake backend: no sockets, no sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from roomchat.bootstrap import ServiceSettings, build_service
from roomchat.core import BackendUnavailable, EndReason, Listener, Message, RoomService, ValidationError
from tests.core.fakes import FakeBackend


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(history=5)


@pytest.fixture
async def service(backend: FakeBackend) -> AsyncIterator[RoomService]:
    svc = build_service(ServiceSettings(buffer=4), backend=backend)
    await svc.start()
    yield svc
    await svc.close()


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages]


async def drain(listener: Listener) -> list[Message]:
    """Everything the listener has now, without waiting."""
    got: list[Message] = []
    while await listener.wait(0):
        batch = listener.take()
        if not batch:
            break
        got += batch
    return got


async def post(service: RoomService, *lines: str, room: str = "r") -> list[Message]:
    return [await service.submit(room, "ann", line) for line in lines]


async def test_live_messages_reach_every_listener_in_order(service: RoomService) -> None:
    async with service.listen("r") as a, service.listen("r") as b:
        await post(service, "one", "two", "three")
        assert texts(await drain(a)) == ["one", "two", "three"]
        assert texts(await drain(b)) == ["one", "two", "three"]


async def test_take_hands_over_everything_pending_as_one_batch(service: RoomService) -> None:
    async with service.listen("r") as a:
        await post(service, "one", "two")
        assert await a.wait(1)
        assert texts(a.take()) == ["one", "two"]
        assert a.take() == []
        assert a.last_id is not None


async def test_message_shape_and_ids_grow(service: RoomService) -> None:
    first, second = await post(service, "one", "two")
    assert first.to_dict().keys() == {"id", "roomId", "userId", "text", "time"}
    assert first.key < second.key and first.id != second.id
    assert first.time.endswith("Z") and len(first.time) == len("2026-11-29T10:00:00.123Z")


async def test_resume_replays_history_then_goes_live(service: RoomService) -> None:
    sent = await post(service, "one", "two", "three")
    async with service.listen("r", after=sent[0].id) as listener:
        await post(service, "four")
        assert texts(await drain(listener)) == ["two", "three", "four"]
        assert listener.gap is None


async def test_messages_published_during_a_slow_replay_follow_it_once(
    service: RoomService, backend: FakeBackend
) -> None:
    sent = await post(service, "one", "two")
    backend.replay_gate = asyncio.Event()
    opening = asyncio.ensure_future(_open_and_drain(service, sent[0].id))
    await backend.replay_started.wait()
    await post(service, "three")  # live while the (stale) replay is in flight
    backend.replay_gate.set()
    assert texts(await opening) == ["two", "three"]


async def test_a_replay_that_already_holds_live_messages_does_not_repeat_them(
    service: RoomService, backend: FakeBackend
) -> None:
    sent = await post(service, "one", "two")
    backend.replay_gate = asyncio.Event()
    backend.stale_replay = False  # the read happens after the live message
    opening = asyncio.ensure_future(_open_and_drain(service, sent[0].id))
    await backend.replay_started.wait()
    await post(service, "three")
    backend.replay_gate.set()
    assert texts(await opening) == ["two", "three"]


async def test_late_live_delivery_of_a_replayed_message_is_dropped(
    service: RoomService, backend: FakeBackend
) -> None:
    sent = await post(service, "one")
    async with service.listen("r") as other:  # keeps the room subscribed
        backend.hold_delivery = True
        await post(service, "two")  # stored, not yet delivered (a reader behind)
        async with service.listen("r", after=sent[0].id) as listener:
            backend.hold_delivery = False
            backend.deliver()  # "two" arrives live after the replay had it
            await post(service, "three")
            assert texts(await drain(listener)) == ["two", "three"]
        assert texts(await drain(other)) == ["two", "three"]


async def _open_and_drain(service: RoomService, after: str) -> list[Message]:
    async with service.listen("r", after=after) as listener:
        return await drain(listener)


async def test_resume_from_an_id_no_longer_in_history_reports_a_gap(service: RoomService) -> None:
    sent = await post(service, *[f"m{i}" for i in range(8)])  # history keeps 5
    async with service.listen("r", after=sent[0].id) as listener:
        assert listener.gap is not None
        assert listener.gap.last_event_id == sent[0].id
        assert listener.gap.oldest_id == sent[3].id
        assert texts(await drain(listener)) == ["m3", "m4", "m5", "m6", "m7"]


async def test_resume_from_an_unknown_id_in_an_empty_room_is_a_gap(service: RoomService) -> None:
    async with service.listen("empty", after="123-0") as listener:
        assert listener.gap is not None and listener.gap.oldest_id is None
        assert await drain(listener) == []


async def test_a_full_buffer_ends_only_that_listener_as_lagged(service: RoomService) -> None:
    async with service.listen("r") as slow, service.listen("r") as fast:
        first = await post(service, "m0")
        assert texts(await drain(slow)) == texts(await drain(fast)) == ["m0"]
        for i in range(1, 7):  # buffer is 4: the slow one never takes
            await post(service, f"m{i}")
            assert [m.text for m in fast.take()] == [f"m{i}"]
        assert slow.ended is EndReason.LAGGED
        assert slow.done and slow.take() == []
        assert slow.last_id == first[0].id  # where the client resumes from
        assert fast.ended is None
        assert service.stats().lagged == 1


async def test_a_listener_whose_client_left_drops_what_was_pending(service: RoomService) -> None:
    async with service.listen("r") as gone:
        await post(service, "never read")
        gone.end(EndReason.CLOSED)
        assert gone.done and gone.take() == []
        assert service.stats().delivered == 0  # nothing counted that nobody received


async def test_delete_ends_streams_after_what_was_pending(service: RoomService) -> None:
    async with service.listen("r") as listener:
        await post(service, "last words")
        await service.delete("r")
        assert texts(await drain(listener)) == ["last words"]
        assert listener.ended is EndReason.DELETED
    assert await service.history("r") == []
    assert [info.room_id for info in (await service.rooms()).rooms] == []


async def test_close_ends_every_stream_for_shutdown(backend: FakeBackend) -> None:
    svc = build_service(ServiceSettings(), backend=backend)
    await svc.start()
    async with svc.listen("r") as listener:
        await svc.close()
        assert await listener.wait(1)
        assert listener.ended is EndReason.SHUTDOWN
    with pytest.raises(BackendUnavailable):
        async with svc.listen("r"):
            pass


async def test_leaving_releases_the_room_even_when_the_body_raises(
    service: RoomService, backend: FakeBackend
) -> None:
    with pytest.raises(RuntimeError):
        async with service.listen("r"):
            raise RuntimeError("client went away badly")
    assert backend.subscriptions == ["r"] and backend.unsubscriptions == ["r"]
    assert (await service.room("r")).listeners == 0
    assert service.stats().listeners == {"unknown": 0}


async def test_wait_times_out_on_an_idle_listener(service: RoomService) -> None:
    async with service.listen("r") as listener:
        assert await listener.wait(0.01) is False


async def test_each_message_is_encoded_once_for_all_listeners(service: RoomService) -> None:
    calls: list[str] = []

    def codec(message: Message) -> bytes:
        calls.append(message.id)
        return message.text.encode()

    async with service.listen("r") as a, service.listen("r") as b:
        await post(service, "hello")
        frames = [m.encode(codec) for m in a.take() + b.take()]
    assert frames == [b"hello", b"hello"] and frames[0] is frames[1]
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("room", "user", "text", "field"),
    [
        ("", "ann", "hi", "roomId"),
        ("a" * 65, "ann", "hi", "roomId"),
        ("no spaces", "ann", "hi", "roomId"),
        ("caf\u00e9", "ann", "hi", "roomId"),
        ("r", "   ", "hi", "userId"),
        ("r", "a" * 65, "hi", "userId"),
        ("r", "bell\x07", "hi", "userId"),
        ("r", "ann", "", "text"),
        ("r", "ann", " \n\t ", "text"),
        ("r", "ann", "x" * 4097, "text"),
        ("r", "ann", "nul\x00", "text"),
    ],
)
async def test_invalid_input_names_the_field(
    service: RoomService, room: str, user: str, text: str, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await service.submit(room, user, text)
    assert caught.value.field == field
    assert field in caught.value.message


async def test_user_id_is_trimmed_and_limits_are_inclusive(service: RoomService) -> None:
    message = await service.submit("A-z_0.9", "  ann  ", "x" * 4096)
    assert message.user_id == "ann"
    await service.submit("r" * 64, "u" * 64, "ok")


async def test_history_pages(service: RoomService) -> None:
    sent = await post(service, "a", "b", "c", "d", "e")
    assert texts(await service.history("r", limit=2)) == ["d", "e"]
    assert texts(await service.history("r", limit=2, after=sent[0].id)) == ["b", "c"]
    assert texts(await service.history("r", limit=2, before=sent[3].id)) == ["b", "c"]
    assert await service.history("unused") == []
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": "nope"}, {"before": "x-1"}):
        with pytest.raises(ValidationError):
            await service.history("r", **bad)  # type: ignore[arg-type]


async def test_room_info_and_list(service: RoomService) -> None:
    async with service.listen("quiet"):
        sent = await post(service, "hi", room="busy")
        busy = await service.room("busy")
        assert (busy.listeners, busy.last_id) == (0, sent[0].id)
        page = (await service.rooms()).rooms
        assert [(i.room_id, i.listeners) for i in page] == [("busy", 0), ("quiet", 1)]


async def test_a_backend_that_is_down_stores_nothing(service: RoomService, backend: FakeBackend) -> None:
    backend.down = True
    with pytest.raises(BackendUnavailable):
        await service.submit("r", "ann", "lost?")
    assert await service.healthy() is False
    with pytest.raises(BackendUnavailable):
        async with service.listen("r"):
            pass
    backend.down = False
    assert await service.history("r") == []
    assert service.stats().published == 0
