"""The Redis backend across a lost connection and a promoted replica: nothing skipped silently."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from roomchat.backends import backend_from_url
from roomchat.backends.redis_connect import RedisConnector
from roomchat.core import BackendUnavailable, Message
from tests.backends.redis_server import RedisServer, redis_server, start_replica
from tests.backends.test_redis_backend import started


async def kill_reader(port: int) -> None:
    """Cut the connection of the blocked XREAD, as a dying primary would."""
    client = aioredis.Redis(port=port, decode_responses=True)
    try:
        readers = [c for c in await client.client_list() if c["cmd"] == "xread"]
        assert len(readers) == 1, readers
        await client.client_kill_filter(_id=readers[0]["id"])
    finally:
        await client.aclose()


def holding(pipe: Any, key: str, messages: list[Message]) -> None:
    """Make the room's stream hold just `messages`, as a replica promoted too early would."""
    pipe.delete(key)
    for message in messages:
        pipe.xadd(key, {"userId": message.user_id, "text": message.text}, message.id)


async def test_the_reader_resumes_from_the_last_id_it_delivered(redis: RedisServer) -> None:
    async with started(redis.url) as (a, sink), started(redis.url) as (b, _):
        await a.subscribe("r")
        before = [await b.publish("r", "ann", f"m{i}") for i in range(3)]
        await sink.until(lambda: len(sink.messages) == 3)
        await kill_reader(redis.port)
        # Stored while the reader reconnects (it waits at least 50 ms): not one may be skipped.
        during = [await b.publish("r", "ann", f"n{i}") for i in range(3)]
        await sink.until(lambda: "r" in sink.interrupted_rooms)
        await sink.until(lambda: len(sink.messages) >= 6)
        after = await b.publish("r", "ann", "live")
        await sink.until(lambda: len(sink.messages) >= 7)
        assert sink.messages == [*before, *during, after]  # each once, in order


async def test_a_primary_behind_what_was_delivered_is_reported_and_read_from(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica promoted before it had the last messages: a log line, a gap, and no skipped post."""
    caplog.set_level(logging.WARNING, logger="roomchat.redis")
    async with started(redis.url) as (a, sink):
        await a.subscribe("r")
        await a.subscribe("quiet")
        posted = [await a.publish("r", "ann", f"m{i}") for i in range(5)]
        await sink.until(lambda: len(sink.messages) == 5)
        key = "roomchat:room:r"
        client = aioredis.Redis(port=redis.port, decode_responses=True)
        try:
            # What the promoted replica holds: m0..m2 only, its last id m2.
            async with client.pipeline(transaction=True) as pipe:
                holding(pipe, key, posted[:3])
                await pipe.execute()
            await kill_reader(redis.port)  # the old primary dies
            await sink.until(lambda: "lacks" in caplog.text)
            # Its clock is behind the lost m4: the next post may take an id the reader
            # already went past (here m3's again); it must still be delivered.
            await client.xadd(key, {"userId": "bob", "text": "new"}, posted[3].id)
            await sink.until(lambda: len(sink.messages) == 6)
        finally:
            await client.aclose()
        assert (sink.messages[-1].id, sink.messages[-1].text) == (posted[3].id, "new")
        assert f"r (delivered up to {posted[4].id}, Redis has {posted[2].id} up to it)" in caplog.text
        assert "quiet" not in caplog.text  # an empty room lost nothing
        assert "r" in sink.interrupted_rooms  # its listeners resume from their own last id...
        replay = await a.replay("r", posted[4].id)
        assert not replay.found and replay.oldest_id == posted[0].id  # ...and get a gap


async def test_a_primary_lacking_the_last_delivered_id_is_reported_though_it_has_newer_posts(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Posts stored on the promoted replica before the reader is back hide the loss from a newest-id check."""
    caplog.set_level(logging.WARNING, logger="roomchat.redis")
    async with started(redis.url) as (a, sink):
        await a.subscribe("r")
        posted = [await a.publish("r", "ann", f"m{i}") for i in range(5)]
        await sink.until(lambda: len(sink.messages) == 5)
        key = "roomchat:room:r"
        newer = f"{int(posted[4].id.split('-')[0]) + 1}-0"
        client = aioredis.Redis(port=redis.port, decode_responses=True)
        try:
            [reader] = [c["id"] for c in await client.client_list() if c["cmd"] == "xread"]
            # In one step, so the blocked XREAD never sees it: m0..m2, a post made after the
            # failover, and the reader's connection cut.
            async with client.pipeline(transaction=True) as pipe:
                holding(pipe, key, posted[:3])
                pipe.xadd(key, {"userId": "bob", "text": "newer"}, newer)
                pipe.execute_command("CLIENT", "KILL", "ID", reader)
                await pipe.execute()
            await sink.until(lambda: len(sink.messages) == 6)
        finally:
            await client.aclose()
        assert sink.messages[-1].id == newer  # delivered once, nothing before it again
        assert f"r (delivered up to {posted[4].id}, Redis has {posted[2].id} up to it)" in caplog.text
        assert not (await a.replay("r", posted[4].id)).found


async def test_wait_for_a_replica_refuses_to_acknowledge_what_no_replica_has(redis: RedisServer) -> None:
    async with started(redis.url + "?wait=1") as (backend, _):
        with pytest.raises(BackendUnavailable, match=r"0 of 1 replicas .* had it within 1000 ms"):
            await backend.publish("r", "ann", "alone")
        with pytest.raises(BackendUnavailable, match="0 of 1 replicas"):
            await backend.publish_once("r", "ann", "alone", "key-1")


async def test_wait_for_a_replica_acknowledges_once_the_replica_has_it(tmp_path: Path) -> None:
    with redis_server(tmp_path) as primary:
        replica = start_replica(tmp_path / "replica", primary)
        assert replica.proc is not None
        try:
            async with started(primary.url + "?wait=1") as (backend, _):
                posted = [await backend.publish("r", "ann", f"m{i}") for i in range(3)]
                # A replica that stalls (SIGSTOP) for 0.3 s: the post is answered only after it.
                replica.proc.send_signal(signal.SIGSTOP)
                resume = asyncio.get_running_loop().call_later(0.3, replica.proc.send_signal, signal.SIGCONT)
                asked = time.monotonic()
                once = await backend.publish_once("r", "ann", "keyed", "key-1")
                assert time.monotonic() - asked >= 0.3
                resume.cancel()
                on_replica = aioredis.Redis(port=replica.port, decode_responses=True)
                try:
                    entries = await on_replica.xrange("roomchat:room:r")
                finally:
                    await on_replica.aclose()
                assert [entry_id for entry_id, _ in entries] == [m.id for m in [*posted, once.message]]
        finally:
            replica.proc.send_signal(signal.SIGCONT)
            replica.kill()


def test_sentinel_urls_name_the_sentinels_the_service_and_the_db() -> None:
    url = "redis+sentinel://:s%40cret@10.0.0.1:26380,10.0.0.2,[::1]:5000/chat/3?wait=1"
    target = RedisConnector(url)
    assert target.wait == 1
    assert target.where == "primary 'chat' of the sentinels 10.0.0.1:26380,10.0.0.2:26379,::1:5000 (db 3)"
    assert "cret" not in target.where
    assert RedisConnector("redis://h:1/2?wait=2").where == "h:1/2"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("redis+sentinel://127.0.0.1:26379", "service name"),
        ("redis+sentinel://127.0.0.1:26379/", "service name"),
        ("redis+sentinel://127.0.0.1:x/chat", "host:port"),
        ("redis+sentinel://127.0.0.1:26379,/chat", "host:port"),
        ("redis+sentinel://127.0.0.1:26379/chat/zero", "database must be a number"),
        ("redis+sentinel://127.0.0.1:26379/chat?retry=1", "unknown option"),
        ("redis+sentinel://127.0.0.1:26379/chat?wait=-1", "wait must be"),
        ("redis://127.0.0.1:6379/0?wait=99", "wait must be"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_before_connecting(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        backend_from_url(url)
