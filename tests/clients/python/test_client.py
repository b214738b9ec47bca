"""roomchat_client against a real `roomchat serve`, with a proxy between them to cut and hold the line."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import httpx
import pytest
from roomchat_client import Client, Gap, Message, Presence, RoomchatError
from roomchat_client.backoff import delay

from tests.clients.python.support import Proxy, Server, reading, until


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server("--history", "5") as running:
        yield running


@pytest.fixture(scope="module")
def roomy() -> Iterator[Server]:
    with Server() as running:
        yield running


def texts(events: list[object]) -> list[str]:
    return [e.text for e in events if isinstance(e, Message)]


async def post(url: str, room: str, *lines: str) -> list[str]:
    async with httpx.AsyncClient(base_url=url) as http:
        ids = []
        for line in lines:
            r = await http.post(f"/api/room/{room}", json={"userId": "bob", "text": line})
            assert r.status_code == 201, r.text
            ids.append(r.json()["message"]["id"])
        return ids


async def stored(url: str, room: str) -> list[str]:
    async with httpx.AsyncClient(base_url=url) as http:
        return [m["text"] for m in (await http.get(f"/api/room/{room}/messages")).json()["messages"]]


async def test_publish_returns_the_stored_message_and_a_subscriber_gets_each_once_in_order(
    server: Server,
) -> None:
    async with Client(server.url, user_id="ann") as client:
        subscription = await client.subscribe("basics")
        async with reading(subscription) as got:
            message = await client.publish("basics", "hello")
            await post(server.url, "basics", "two", "three")
            await until(lambda: len(got) == 3, 5, "three messages")
        assert message == got[0] and message.user_id == "ann" and message.room_id == "basics"
        assert texts(got) == ["hello", "two", "three"]
        history = await client.history("basics", limit=2)
        assert [m.text for m in history] == ["two", "three"]
        assert [m.text for m in await client.history("basics", before=history[0].id)] == ["hello"]
        assert [m.text for m in await client.history("basics", after=message.id, limit=1)] == ["two"]
        assert await client.presence("basics") == ["ann"]
        assert client.connected


async def test_a_lost_ack_is_resent_with_the_same_key_and_stored_once(server: Server) -> None:
    async with Proxy(server.port) as proxy, Client(proxy.url, user_id="ann") as client:
        await until(lambda: client.connected, 5, "connected")
        proxy.drop_acks = 1  # the server stores it; the answer is lost with the connection
        message = await client.publish("lost-ack", "only once", timeout=10)
        assert proxy.connections == 2 and message.text == "only once"
        assert await stored(server.url, "lost-ack") == ["only once"]


async def test_a_publish_made_while_disconnected_waits_for_the_connection(server: Server) -> None:
    async with Proxy(server.port) as proxy, Client(proxy.url, user_id="ann") as client:
        await until(lambda: client.connected, 5, "connected")
        proxy.hold = True
        proxy.cut()
        await until(lambda: not client.connected, 5, "disconnected")
        publishing = asyncio.create_task(client.publish("waits", "sent later", timeout=20))
        await asyncio.sleep(0.3)  # not a synchronisation: time for a publish that would not wait to fail
        assert not publishing.done()
        proxy.hold = False
        message = await publishing
        assert await stored(server.url, "waits") == [message.text]
        with pytest.raises(TimeoutError):
            proxy.hold = True
            proxy.cut()
            await client.publish("waits", "never", timeout=0.5)


async def test_subscribe_waits_for_a_server_that_is_away_or_too_busy(server: Server) -> None:
    async with Proxy(server.port) as proxy:
        proxy.hold = True
        async with Client(proxy.url) as client:
            subscribing = asyncio.create_task(client.subscribe("patience"))
            await asyncio.sleep(0.5)  # not a synchronisation: time for a subscribe that would fail
            assert not subscribing.done()
            proxy.hold, proxy.busy = False, 3  # the next three connections are answered 408
            subscription = await asyncio.wait_for(subscribing, 15)
            async with reading(subscription) as got:
                await post(server.url, "patience", "at last")
                await until(lambda: texts(got) == ["at last"], 5, "the message")
        assert proxy.busy == 0


async def test_a_refused_post_raises_with_the_servers_code(server: Server) -> None:
    async with Client(server.url, user_id="ann") as client:
        with pytest.raises(RoomchatError) as refused:
            await client.publish("refused", "   ")
        assert refused.value.code == 422 and "whitespace" in refused.value.message
        with pytest.raises(RoomchatError) as bad_room:
            await client.subscribe("no spaces allowed", last_id="1-0")
        assert bad_room.value.code == 422


async def test_resumes_after_a_drop_without_gap_or_duplicate(server: Server) -> None:
    async with Proxy(server.port) as proxy, Client(proxy.url) as client:
        subscription = await client.subscribe("resume")
        async with reading(subscription) as got:
            await post(server.url, "resume", "one", "two")
            await until(lambda: len(got) == 2, 5, "two messages")
            proxy.hold = True
            proxy.cut()
            await post(server.url, "resume", "three", "four")
            proxy.hold = False
            await until(lambda: len(got) == 4, 5, "four messages")
            await post(server.url, "resume", "five")
            await until(lambda: len(got) == 5, 5, "five messages")
        assert texts(got) == ["one", "two", "three", "four", "five"] and len(got) == 5


async def test_a_room_empty_when_subscribed_is_resumed_from_its_start(server: Server) -> None:
    async with Proxy(server.port) as proxy, Client(proxy.url) as client:
        subscription = await client.subscribe("empty-at-first")
        proxy.hold = True
        proxy.cut()
        await post(server.url, "empty-at-first", "while away")
        proxy.hold = False
        async with reading(subscription) as got:
            await until(lambda: len(got) == 1, 5, "the message posted while away")
        assert got == [got[0]] and texts(got) == ["while away"]  # no Gap: nothing was lost


async def test_a_lost_resume_point_gives_a_gap_then_what_history_holds(server: Server) -> None:
    async with Proxy(server.port) as proxy, Client(proxy.url) as client:
        subscription = await client.subscribe("gap")
        async with reading(subscription) as got:
            (seen,) = await post(server.url, "gap", "seen")
            await until(lambda: len(got) == 1, 5, "the first message")
            proxy.hold = True
            proxy.cut()
            ids = await post(server.url, "gap", *[f"m{i}" for i in range(8)])  # --history 5
            proxy.hold = False
            await until(lambda: len(got) == 7, 5, "a gap and the five kept")
        assert got[1] == Gap("gap", seen, ids[3])
        assert texts(got) == ["seen", "m3", "m4", "m5", "m6", "m7"]


async def test_a_deleted_room_ends_the_iteration(server: Server) -> None:
    async with Client(server.url) as client, httpx.AsyncClient() as http:
        subscription = await client.subscribe("deleted")
        await post(server.url, "deleted", "last words")
        assert (await http.delete(f"{server.url}/api/room/deleted")).status_code == 200
        async with asyncio.timeout(5):
            got = [event async for event in subscription]  # ends by itself
        assert texts(got) == ["last words"]


async def test_a_slow_reader_pauses_its_room_and_loses_nothing(roomy: Server) -> None:
    server = roomy
    lines = [f"n{i}" for i in range(40)]
    async with Client(server.url, buffer=8) as client, httpx.AsyncClient(base_url=server.url) as http:
        slow = await client.subscribe("slow")
        other = await client.subscribe("other")
        await post(server.url, "slow", *lines)  # nothing read: the client lets go of the room at 8
        listeners = -1

        async def count() -> None:
            nonlocal listeners
            listeners = (await http.get("/api/room/slow")).json()["listeners"]

        async with asyncio.timeout(5):
            while listeners != 0:
                await count()
        async with reading(other) as others:
            await post(server.url, "other", "still served")
            await until(lambda: len(others) == 1, 5, "the other room is not held up")
        got: list[str] = []
        async with asyncio.timeout(10):
            while len(got) < 40:
                event = await anext(slow)
                assert isinstance(event, Message), event
                got.append(event.text)
        assert got == lines
        await count()
        assert listeners == 1  # subscribed again once read


async def test_presence_names_the_client_and_tells_who_comes_and_goes(server: Server) -> None:
    async with Client(server.url, user_id="ann") as ann:
        subscription = await ann.subscribe("presence", presence=True)
        async with reading(subscription) as got:
            async with Client(server.url, user_id="bob") as bob:
                await bob.subscribe("presence")
                assert sorted(await ann.presence("presence")) == ["ann", "bob"]
                await until(lambda: any(_names(e, "joined") for e in got), 5, "bob joined")
            await until(lambda: any(_names(e, "left") for e in got), 5, "bob left")


def _names(event: object, which: str) -> bool:
    return isinstance(event, Presence) and "bob" in getattr(event, which)


def test_reconnect_delays_are_jittered_first_within_1s_then_at_most_10s() -> None:
    rand = random.Random(1)
    firsts = [delay(0, rand) for _ in range(1000)]
    firsts.sort()
    assert firsts[-1] <= 1.0 and firsts[100] < 0.15 and firsts[900] > 0.85  # spread over the second
    later = [delay(n, rand) for n in range(1, 40) for _ in range(50)]
    assert max(later) <= 10.0 and max(later) > 9.0


async def test_closing_ends_iterations_and_refuses_use() -> None:
    client = Client("http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(RuntimeError):
        await client.publish("r", "x")
    async with client:
        assert not client.connected
    with pytest.raises(ConnectionError):
        await client.publish("r", "x")
