"""RedisBackend against a real redis-server of the test's own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from roomchat.backends import backend_from_url
from roomchat.backends.redis import RedisBackend
from roomchat.core import BackendUnavailable, Message
from roomchat.core.errors import Overloaded
from roomchat.core.message import format_time, id_key
from roomchat.core.ports import BackendSettings
from roomchat.testing.backend_suite import RecordingSink
from tests.backends.redis_server import RedisServer, free_port


@asynccontextmanager
async def started(url: str, history: int = 1000) -> AsyncIterator[tuple[RedisBackend, RecordingSink]]:
    backend = backend_from_url(url, BackendSettings(history=history))
    assert isinstance(backend, RedisBackend)
    sink = RecordingSink()
    await backend.start(sink)
    try:
        yield backend, sink
    finally:
        await backend.close()


async def test_ids_are_stream_ids_and_history_pages(redis: RedisServer) -> None:
    async with started(redis.url) as (backend, _):
        posted = [await backend.publish("lobby", "ann", f"m{i}") for i in range(10)]
        keys = [id_key(m.id) for m in posted]
        assert None not in keys and keys == sorted(keys) and len(set(keys)) == 10
        assert all(m.time == format_time(int(m.id.split("-")[0])) for m in posted)
        assert await backend.history("lobby", 3, None, None) == posted[-3:]
        assert await backend.history("lobby", 4, posted[2].id, None) == posted[3:7]
        assert await backend.history("lobby", 4, None, posted[2].id) == posted[:2]
        assert await backend.history("lobby", 50, posted[-1].id, None) == []
        assert await backend.history("nowhere", 50, None, None) == []
        assert await backend.last_ids(["lobby", "nowhere"]) == {"lobby": posted[-1].id, "nowhere": None}
        assert await backend.rooms(100, None) == ["lobby"]


async def test_history_keeps_only_the_last_n_although_trimming_is_approximate(redis: RedisServer) -> None:
    async with started(redis.url, history=5) as (backend, _):
        posted = [await backend.publish("r", "ann", f"m{i}") for i in range(20)]
        assert await backend.history("r", 50, None, None) == posted[-5:]
        assert await backend.history("r", 2, posted[0].id, None) == posted[15:17]
        assert await backend.history("r", 50, None, posted[-1].id) == posted[15:19]
        replay = await backend.replay("r", "1-0")
        assert not replay.found and replay.messages == posted[-5:] and replay.oldest_id == posted[15].id
        # An id still in the stream resumes without loss, even if just past the last N.
        resumed = await backend.replay("r", posted[12].id)
        assert resumed.found and resumed.messages == posted[13:]


async def test_replay_answers_a_gap_for_unknown_or_malformed_ids(redis: RedisServer) -> None:
    async with started(redis.url) as (backend, _):
        posted = [await backend.publish("r", "ann", f"m{i}") for i in range(3)]
        ms, seq = posted[0].id.split("-")
        for asked in ["1-0", f"0{ms}-{seq}", "99999999999999999999999-1", "5-99999999999999999999999", "x"]:
            replay = await backend.replay("r", asked)
            assert not replay.found and replay.messages == posted and replay.oldest_id == posted[0].id
        assert (await backend.replay("r", posted[-1].id)).messages == []
        empty = await backend.replay("nowhere", "1-0")
        assert empty.messages == [] and not empty.found and empty.oldest_id is None
        assert await backend.history("r", 5, "99999999999999999999999-1", None) == []
        assert await backend.history("r", 5, None, "99999999999999999999999-1") == posted


async def test_messages_reach_every_subscribed_process_once_in_order(redis: RedisServer) -> None:
    async with started(redis.url) as (a, sink_a), started(redis.url) as (b, sink_b):
        await a.subscribe("lobby")  # a missing stream: the first message must not be missed
        await b.subscribe("lobby")
        posted = [await (a if i % 2 else b).publish("lobby", "ann", f"m{i}") for i in range(50)]
        await sink_a.until(lambda: len(sink_a.messages) >= 50)
        await sink_b.until(lambda: len(sink_b.messages) >= 50)
        assert sink_a.messages == posted and sink_b.messages == posted


async def test_a_new_subscription_wakes_the_blocked_reader(redis: RedisServer) -> None:
    async with started(redis.url) as (a, sink), started(redis.url) as (b, _):
        await a.subscribe("first")
        await b.publish("first", "ann", "hello")
        await sink.until(lambda: len(sink.messages) == 1)  # the reader is now blocked on `first`
        started_at = time.monotonic()
        await a.subscribe("second")
        message = await b.publish("second", "bob", "hi")
        await sink.until(lambda: len(sink.messages) == 2, timeout=1.0)  # well before BLOCK ends
        assert sink.messages[-1] == message
        assert time.monotonic() - started_at < 1.0


async def test_only_subscribed_rooms_are_fed(redis: RedisServer) -> None:
    async with started(redis.url) as (a, sink), started(redis.url) as (b, _):
        await a.subscribe("quiet")
        await a.subscribe("watched")
        a.unsubscribe("quiet")
        await b.publish("quiet", "ann", "not for a")
        wanted = await b.publish("watched", "ann", "for a")
        await sink.until(lambda: len(sink.messages) >= 1)
        assert sink.messages == [wanted]


async def test_delete_reaches_every_process_and_later_ids_keep_growing(redis: RedisServer) -> None:
    async with started(redis.url) as (a, sink_a), started(redis.url) as (b, sink_b):
        await b.subscribe("doomed")
        last = await a.publish("doomed", "ann", "bye")
        await a.delete("doomed")
        assert sink_a.deleted_rooms == ["doomed"]
        await sink_b.until(lambda: sink_b.deleted_rooms == ["doomed"])
        assert await a.history("doomed", 50, None, None) == []
        assert await a.rooms(100, None) == [] and await a.last_ids(["doomed"]) == {"doomed": None}
        assert not (await b.replay("doomed", last.id)).found
        again = await a.publish("doomed", "ann", "back")
        assert again.key > last.key
        assert await a.rooms(100, None) == ["doomed"]
        client = aioredis.Redis(port=redis.port)
        try:
            assert await client.ttl("roomchat:room:doomed") == -1  # no longer a tombstone
        finally:
            await client.aclose()
        assert sink_a.deleted_rooms == ["doomed"]  # its own notice is not applied twice


async def test_start_fails_fast_and_clearly_when_redis_is_unreachable() -> None:
    port = free_port()
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0")
    started_at = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"cannot reach Redis at 127.0.0.1:{port}/0"):
        await backend.start(RecordingSink())
    assert time.monotonic() - started_at < 3
    assert not await backend.ping()


def test_a_malformed_url_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError):
        backend_from_url("redis://127.0.0.1:notaport/0")


async def test_redis_restart_interrupts_rooms_errors_clearly_and_recovers(redis: RedisServer) -> None:
    async with started(redis.url) as (a, sink), started(redis.url) as (b, _):
        await a.subscribe("r")
        await b.publish("r", "ann", "before")
        await sink.until(lambda: len(sink.messages) == 1)
        redis.kill()
        await sink.until(lambda: "r" in sink.interrupted_rooms)
        assert not await a.ping()
        with pytest.raises(BackendUnavailable, match=r"Redis at 127\.0\.0\.1:\d+/0 is unreachable"):
            await b.publish("r", "ann", "lost")
        with pytest.raises(BackendUnavailable):
            await a.subscribe("other")
        redis.start()
        deadline = time.monotonic() + 10
        while not await b.ping():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        after = await b.publish("r", "ann", "after")
        await sink.until(lambda: after in sink.messages, timeout=5)
        await a.subscribe("other")
        other = await b.publish("other", "bob", "fresh")
        await sink.until(lambda: other in sink.messages, timeout=5)


async def test_close_releases_every_connection(redis: RedisServer) -> None:
    client = aioredis.Redis(port=redis.port)
    try:
        async with started(redis.url) as (backend, _):
            await backend.subscribe("r")
            await backend.publish("r", "ann", "x")
            assert await backend.ping()
        async with asyncio.timeout(3):
            while int((await client.info("clients"))["connected_clients"]) > 1:
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()


async def test_a_refusing_redis_is_reported_as_such(redis: RedisServer) -> None:
    client = aioredis.Redis(port=redis.port)
    try:
        await client.config_set("maxmemory", "1")  # every write is now refused (OOM)
        async with started(redis.url) as (backend, _):
            with pytest.raises(
                BackendUnavailable,
                match=r"cannot store the message: Redis at .* refused \(command not allowed when used memory",
            ):
                await backend.publish("r", "ann", "x")
    finally:
        await client.aclose()


async def test_a_room_deleted_and_gone_from_redis_still_never_gets_a_lower_id(redis: RedisServer) -> None:
    """Redis's clock behind an id it gave (stepped back, or a replica promoted): the floor holds."""
    client = aioredis.Redis(port=redis.port, decode_responses=True)
    try:
        async with started(redis.url) as (backend, _):
            await backend.publish("r", "ann", "first")
            future = await client.xadd(
                "roomchat:room:r", {"userId": "ann", "text": "x"}, id="9999999999999-5"
            )
            await backend.delete("r")
            assert await client.exists("roomchat:room:r") == 0  # no tombstone left to expire
            again = await backend.publish("r", "ann", "back")
            fresh = await backend.publish("fresh", "ann", "a room never seen")
            assert again.id == "9999999999999-6" and fresh.key > id_key(future)
            later = await backend.publish("r", "ann", "later")
            assert later.key > again.key
    finally:
        await client.aclose()


async def test_the_room_set_of_older_versions_is_taken_over(redis: RedisServer) -> None:
    client = aioredis.Redis(port=redis.port, decode_responses=True)
    try:
        await client.sadd("roomchat:rooms", "a", "b", "emptied")
        for room in ("a", "b"):
            await client.xadd(f"roomchat:room:{room}", {"userId": "ann", "text": "old"})
        await client.xadd("roomchat:room:emptied", {"userId": "ann", "text": "old"})
        await client.xtrim("roomchat:room:emptied", maxlen=0)  # an older version's tombstone
        async with started(redis.url) as (backend, _):
            assert await backend.rooms(10, None) == ["a", "b"]
            assert await client.exists("roomchat:rooms") == 0
            await backend.publish("c", "ann", "new")
            await backend.delete("a")
            assert await backend.rooms(10, None) == ["b", "c"]
            assert [m.text for m in await backend.history("b", 10, None, None)] == ["old"]
    finally:
        await client.aclose()


async def test_max_rooms_holds_across_processes_racing(redis: RedisServer) -> None:
    settings = BackendSettings(max_rooms=5)
    a, b = RedisBackend(redis.url, settings), RedisBackend(redis.url, settings)
    await a.start(RecordingSink())
    await b.start(RecordingSink())
    try:
        results = await asyncio.gather(
            *((a if i % 2 else b).publish(f"room-{i}", "ann", "x") for i in range(40)), return_exceptions=True
        )
        stored = [r for r in results if isinstance(r, Message)]
        assert len(stored) == 5
        assert all(isinstance(r, Overloaded) for r in results if not isinstance(r, Message))
        assert await a.rooms(100, None) == sorted(m.room_id for m in stored)
    finally:
        await a.close()
        await b.close()
