"""Presence on one process, over real sockets: REST, the HTML adapter's routes and gRPC.

The coalescing window is the contract's one second, so a test that checks that
nothing happened lets a few windows pass first.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime

import grpc
import httpx
import jwt
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.bootstrap import ServiceSettings
from roomchat.tokens import JwtAuthenticator
from tests.adapters.grpc.client import read, room_stub
from tests.support import SSE, Event, Running, serve, stream
from tests.ws_client import ws_connect

WINDOW = 1.0
SECRET = "a-test-secret-of-at-least-32-bytes!"


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    async with serve("rest", "html", "grpc") as running:
        yield running


async def presence_event(sse: SSE, timeout: float = 5.0) -> dict[str, object]:
    """The next event, which must be `presence`."""
    ev = await sse.next(timeout)
    assert isinstance(ev, Event) and ev.event == "presence", ev
    assert ev.id is None  # it must not move the client's Last-Event-ID
    data: dict[str, object] = ev.json()
    return data


async def next_event(sse: SSE, timeout: float = 5.0) -> Event:
    ev = await sse.next(timeout)
    assert isinstance(ev, Event), "the stream ended"
    return ev


async def test_presence_lists_named_users_and_counts_anonymous_ones(
    server: Running, client: httpx.AsyncClient
) -> None:
    base = server.url()
    async with (
        stream(client, f"{base}/api/stream/lobby?userId=%20ann%20"),
        stream(client, f"{base}/api/stream/lobby?userId=ann"),
        stream(client, f"{base}/api/stream/lobby?userId=bob&presence=1") as bob,
        stream(client, f"{base}/api/stream/lobby"),
        stream(client, f"{server.url('html')}/stream/lobby?presence=0"),
    ):
        assert await presence_event(bob) == {"roomId": "lobby", "joined": ["ann", "bob"], "left": []}
        found = (await client.get(f"{base}/api/room/lobby/presence")).json()
        assert found["roomId"] == "lobby" and found["anonymous"] == 2
        assert [(u["userId"], u["connections"]) for u in found["users"]] == [("ann", 2), ("bob", 1)]
        for user in found["users"]:
            since = datetime.fromisoformat(user["since"].replace("Z", "+00:00"))
            assert abs(since.timestamp() - time.time()) < 60 and user["since"].endswith("Z")
        assert (await client.get(f"{server.url('html')}/room/lobby/presence")).json() == found
        assert (await client.get(f"{base}/api/room/lobby")).json()["listeners"] == 5
    empty = (await client.get(f"{base}/api/room/empty/presence")).json()
    assert empty == {"roomId": "empty", "users": [], "anonymous": 0, "next": None}


async def test_a_watcher_sees_users_arrive_and_leave_between_messages(
    server: Running, client: httpx.AsyncClient
) -> None:
    base = server.url()
    async with stream(client, f"{base}/api/stream/r?presence=1") as watcher:
        async with stream(client, f"{base}/api/stream/r?userId=ann"):
            assert await presence_event(watcher) == {"roomId": "r", "joined": ["ann"], "left": []}
            r = await client.post(f"{base}/api/room/r", json={"userId": "ann", "text": "hi"})
            posted = r.json()["message"]
            ev = await next_event(watcher)
            assert ev.event == "message" and ev.id == posted["id"]
        assert await presence_event(watcher) == {"roomId": "r", "joined": [], "left": ["ann"]}


async def test_a_reconnect_inside_the_window_emits_nothing(
    server: Running, client: httpx.AsyncClient
) -> None:
    base = server.url()
    async with stream(client, f"{base}/api/stream/r?presence=1") as watcher:
        async with stream(client, f"{base}/api/stream/r?userId=ann"):
            assert await presence_event(watcher) == {"roomId": "r", "joined": ["ann"], "left": []}
        assert await server.listeners_become("r", 1)  # the server saw ann's stream close
        async with stream(client, f"{base}/api/stream/r?userId=ann"):
            await asyncio.sleep(3 * WINDOW)  # every window in which ann's leave could show
            r = await client.post(f"{base}/api/room/r", json={"userId": "ann", "text": "still here"})
            ev = await next_event(watcher)
            assert ev.event == "message" and ev.json()["id"] == r.json()["message"]["id"]


async def test_a_user_with_two_tabs_leaves_only_when_both_close(
    server: Running, client: httpx.AsyncClient
) -> None:
    base = server.url()
    async with stream(client, f"{base}/api/stream/r?presence=1") as watcher:
        async with stream(client, f"{base}/api/stream/r?userId=ann"):
            async with stream(client, f"{base}/api/stream/r?userId=ann"):
                assert await presence_event(watcher) == {"roomId": "r", "joined": ["ann"], "left": []}
            assert await server.listeners_become("r", 2)
            await asyncio.sleep(3 * WINDOW)
            users = (await client.get(f"{base}/api/room/r/presence")).json()["users"]
            assert [(u["userId"], u["connections"]) for u in users] == [("ann", 1)]
            async with stream(client, f"{base}/api/stream/r?userId=bob"):
                # The next event is bob's: closing one of ann's tabs announced nothing.
                assert await presence_event(watcher) == {"roomId": "r", "joined": ["bob"], "left": []}
        # Both leave: one event, or two when the closes reach the server either side of
        # a coalescing window's end; nobody joins.
        left: list[str] = []
        while len(left) < 2:
            event = await presence_event(watcher)
            assert event["joined"] == [] and event["left"]
            left += event["left"]
        assert sorted(left) == ["ann", "bob"]


async def test_resuming_after_presence_events_loses_no_message(
    server: Running, client: httpx.AsyncClient
) -> None:
    base = server.url()
    first = (await client.post(f"{base}/api/room/r", json={"userId": "x", "text": "one"})).json()["message"]
    async with stream(client, f"{base}/api/stream/r?presence=1&userId=ann") as ann:
        assert (await presence_event(ann))["joined"] == ["ann"]
    second = (await client.post(f"{base}/api/room/r", json={"userId": "x", "text": "two"})).json()["message"]
    headers = {"Last-Event-ID": first["id"]}
    async with stream(client, f"{base}/api/stream/r?presence=1&userId=ann", headers) as again:
        ev = await next_event(again)
        assert ev.event == "message" and ev.id == second["id"]


async def test_bad_presence_input_is_a_clear_422(server: Running, client: httpx.AsyncClient) -> None:
    base = server.url()
    for path, field in [
        ("/api/stream/r?presence=maybe", "presence"),
        ("/api/stream/r?userId=%20%20", "userId"),
        ("/api/stream/r?userId=a%00b", "userId"),
        (f"/api/stream/r?userId={'x' * 65}", "userId"),
        ("/api/room/bad%20room/presence", "roomId"),
    ]:
        r = await client.get(base + path)
        assert r.status_code == 422, (path, r.text)
        assert field in r.json()["message"]
    r = await client.get(f"{server.url('html')}/stream/r?presence=2")
    assert r.status_code == 422 and "presence" in r.json()["message"]
    assert (await client.get(f"{base}/api/room/r")).json()["listeners"] == 0


async def test_grpc_presence_rpc_and_named_streams(server: Running, client: httpx.AsyncClient) -> None:
    async with room_stub(server.url("grpc")) as stub:
        call = stub.StreamRoom(pb.RoomRequest(roomId="g", userId="gopher"))
        await call.initial_metadata()
        anonymous = stub.StreamRoom(pb.RoomRequest(roomId="g"))
        await anonymous.initial_metadata()
        assert await server.listeners_become("g", 2)
        answer = await stub.Presence(pb.RoomRequest(roomId="g"))
        found = json.loads(answer.data)
        assert [u["userId"] for u in found["users"]] == ["gopher"] and found["anonymous"] == 1
        assert (await client.get(f"{server.url()}/api/room/g/presence")).json() == found
        await stub.PostToRoom(pb.Message(roomId="g", userId="x", text="hi"))
        assert [m.text for m in await read(call, 1)] == ["hi"]  # a named stream is a stream as before
        call.cancel()
        anonymous.cancel()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Presence(pb.RoomRequest(roomId="bad room"))
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        bad = stub.StreamRoom(pb.RoomRequest(roomId="g", userId="a\x01b"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(bad, 1)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_under_jwt_the_listener_is_the_token_s_subject(client: httpx.AsyncClient) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "ann", "exp": now + 600}, SECRET, algorithm="HS256")
    settings = ServiceSettings(auth=JwtAuthenticator(SECRET))
    async with serve("rest", service_settings=settings) as server:
        base = server.url()
        headers = {"authorization": f"Bearer {token}"}
        async with stream(client, f"{base}/api/stream/r?userId=mallory&presence=1", headers) as ann:
            assert await presence_event(ann) == {"roomId": "r", "joined": ["ann"], "left": []}
            found = (await client.get(f"{base}/api/room/r/presence", headers=headers)).json()
            assert [u["userId"] for u in found["users"]] == ["ann"]
        assert (await client.get(f"{base}/api/room/r/presence")).status_code == 401


async def test_websocket_connections_are_named_by_their_url_and_get_presence_frames(
    server: Running, client: httpx.AsyncClient
) -> None:
    base = server.url()
    async with ws_connect(base, "/api/ws?userId=ann") as ann, ws_connect(base) as anonymous:
        await ann.subscribe("w", presence=True)
        assert await ann.next() == {"type": "presence", "roomId": "w", "joined": ["ann"], "left": []}
        await anonymous.subscribe("w")  # did not ask: never gets a presence frame
        async with stream(client, f"{base}/api/stream/w?userId=bob"):
            assert await ann.next() == {"type": "presence", "roomId": "w", "joined": ["bob"], "left": []}
            found = (await client.get(f"{base}/api/room/w/presence")).json()
            assert [u["userId"] for u in found["users"]] == ["ann", "bob"] and found["anonymous"] == 1
        assert await ann.next() == {"type": "presence", "roomId": "w", "joined": [], "left": ["bob"]}
        posted = (await client.post(f"{base}/api/room/w", json={"userId": "x", "text": "hi"})).json()
        assert await anonymous.messages(1) == [posted["message"]]  # the first frame it got
    async with ws_connect(base, "/api/ws?userId=%20") as bad:
        answer = await bad.ask(type="subscribe", roomId="w")
        assert answer["type"] == "error" and answer["code"] == 422 and "userId" in answer["message"]
