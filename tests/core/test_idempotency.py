"""Idempotency keys in the room service over the memory backend (contract: Publishing exactly once)."""

from __future__ import annotations

import pytest

from roomchat.core import RoomService, ValidationError
from tests.core.fakes import FakeBackend


async def started(history: int = 100) -> RoomService:
    service = RoomService(FakeBackend(history=history))
    await service.start()
    return service


async def test_a_second_post_with_the_same_key_stores_nothing_and_answers_the_first() -> None:
    service = await started()
    async with service.listen("r") as listener:
        first = await service.submit_once("r", "ann", "hello", key="k1")
        again = await service.submit_once("r", "ann", "hello again", key="k1")
        assert not first.replayed and again.replayed
        assert again.message == first.message
        assert [m.text for m in listener.take()] == ["hello"]
    assert [m.text for m in await service.history("r")] == ["hello"]
    assert service.stats().published == 1


async def test_a_key_is_per_user_and_per_room() -> None:
    service = await started()
    posts = [
        await service.submit_once(room, user, "hi", key="same")
        for room, user in [("r", "ann"), ("r", "bob"), ("s", "ann")]
    ]
    assert not any(p.replayed for p in posts)
    assert len({p.message.id for p in posts}) == 3


async def test_without_a_key_every_post_is_stored() -> None:
    service = await started()
    a = await service.submit_once("r", "ann", "hi", key=None)
    b = await service.submit_once("r", "ann", "hi", key=None)
    assert a.message.id != b.message.id and not b.replayed


async def test_a_key_outlives_its_message_in_history() -> None:
    service = await started(history=2)
    first = await service.submit_once("r", "ann", "kept?", key="old")
    for i in range(5):  # pushes the keyed message out of history
        await service.submit("r", "bob", f"filler {i}")
    again = await service.submit_once("r", "ann", "kept?", key="old")
    assert again.replayed and again.message == first.message  # same id, time and text
    assert [m.text for m in await service.history("r")] == ["filler 3", "filler 4"]  # no duplicate
    with pytest.raises(ValidationError, match="another text") as refused:
        await service.submit_once("r", "ann", "changed", key="old")
    assert refused.value.field == "key"
    assert service.stats().published == 6


async def test_a_key_outlives_its_room() -> None:
    service = await started()
    first = await service.submit_once("r", "ann", "hi", key="k")
    await service.delete("r")
    again = await service.submit_once("r", "ann", "hi", key="k")
    assert again.replayed and again.message == first.message  # stored once, whatever became of it
    assert await service.history("r") == []


@pytest.mark.parametrize("key", ["", "x" * 65, "naïve", "tab\there", 7])
async def test_a_bad_key_is_a_validation_error(key: object) -> None:
    service = await started()
    with pytest.raises(ValidationError) as refused:
        await service.submit_once("r", "ann", "hi", key=key)  # type: ignore[arg-type]
    assert refused.value.field == "key"
    assert await service.history("r") == []
