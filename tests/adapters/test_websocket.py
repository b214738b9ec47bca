"""The WebSocket endpoint over real sockets with the `websockets` client: every
frame of roomchat.v1, resume, rooms ending one at a time, the limits, bad
frames, a client that vanishes, and the server stopping."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import httpx
import jwt
import pytest
from websockets.exceptions import InvalidStatus

from roomchat.adapters.http import guard
from roomchat.bootstrap import ServiceSettings
from roomchat.tokens import JwtAuthenticator
from tests.support import serve
from tests.ws_client import ws_connect

SECRET = "a-test-secret-of-at-least-32-bytes!"


async def post(base: str, room: str, text: str, user: str = "ann") -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post(f"/api/room/{room}", json={"userId": user, "text": text})
        assert r.status_code == 201, r.text
        message: dict[str, Any] = r.json()["message"]
        return message


async def ws_listeners(base: str) -> int:
    async with httpx.AsyncClient(base_url=base) as client:
        text = (await client.get("/metrics")).text
    found = re.search(r'^roomchat_listeners\{transport="ws"\} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


async def test_subscribe_publish_ack_message_ping_unsubscribe() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        assert ws.connection.subprotocol == "roomchat.v1"
        await ws.subscribe("lobby")
        ack = await ws.ask(type="publish", roomId="lobby", userId="ann", text="hi", ref="r1")
        assert ack["type"] == "ack" and ack["ref"] == "r1"
        assert ack["message"]["text"] == "hi" and ack["message"]["userId"] == "ann"
        assert await ws.messages(1) == [ack["message"]]
        from_rest = await post(server.url(), "lobby", "from rest", user="bob")
        assert await ws.messages(1) == [from_rest]
        assert await ws.ask(type="ping") == {"type": "pong"}
        assert await ws.ask(type="unsubscribe", roomId="lobby") == {"type": "unsubscribed", "roomId": "lobby"}
        await post(server.url(), "lobby", "after unsubscribing")
        assert await ws.ask(type="ping") == {"type": "pong"}  # and no message before it
        assert await server.listeners_become("lobby", 0)


async def test_many_rooms_on_one_connection_each_message_once() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        rooms = [f"room-{i}" for i in range(7)]
        for room in rooms:
            await ws.subscribe(room)
        sent = [await post(server.url(), room, f"to {room}") for room in rooms]
        assert await ws.messages(len(rooms)) == sent


async def test_resume_after_an_id_in_history_has_no_gap_and_no_duplicate() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        first, *rest = [await post(server.url(), "r", f"m{i}") for i in range(4)]
        await ws.subscribe("r", lastId=first["id"])
        assert await ws.messages(3) == rest
        live = await post(server.url(), "r", "live")
        assert await ws.messages(1) == [live]


async def test_resume_from_an_id_not_in_history_sends_gap_then_all_of_history() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        kept = [await post(server.url(), "r", f"m{i}") for i in range(2)]
        await ws.subscribe("r", lastId="1-0")
        gap = await ws.next()
        assert gap == {"type": "gap", "roomId": "r", "lastEventId": "1-0", "oldestId": kept[0]["id"]}
        assert await ws.messages(2) == kept


async def test_a_deleted_room_ends_alone_and_others_stay_subscribed() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        await ws.subscribe("gone")
        await ws.subscribe("stays")
        async with httpx.AsyncClient(base_url=server.url()) as client:
            assert (await client.delete("/api/room/gone")).status_code == 200
        assert await ws.next() == {"type": "deleted", "roomId": "gone"}
        assert await server.listeners_become("gone", 0)
        stays = await post(server.url(), "stays", "still here")
        assert await ws.messages(1) == [stays]
        await ws.subscribe("gone")  # the room may be joined again on the same connection


async def test_a_lagged_room_ends_alone_and_others_carry_on() -> None:
    async with (
        serve("rest", service_settings=ServiceSettings(buffer=8)) as server,
        ws_connect(server.url()) as ws,
    ):
        await ws.subscribe("fast")
        await ws.subscribe("calm")
        # 20 posts within one turn of the event loop: more than the buffer of 8 pile
        # up before the connection's writer runs, as for a client that stops reading.
        burst = [await server.service.submit("fast", "u", f"m{i}") for i in range(20)]
        assert await ws.next() == {"type": "lagged", "roomId": "fast", "lastEventId": None}
        calm = await post(server.url(), "calm", "calm")
        assert await ws.messages(1) == [calm]
        await ws.subscribe("fast", lastId=burst[0].id)  # resumes and loses nothing in history
        assert [m["text"] for m in await ws.messages(19)] == [f"m{i}" for i in range(1, 20)]


async def test_a_hundred_rooms_per_connection_and_not_one_more() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        for i in range(100):
            await ws.send(type="subscribe", roomId=f"r{i}")
        for i in range(100):
            assert await ws.next() == {"type": "subscribed", "roomId": f"r{i}"}
        refused = await ws.ask(type="subscribe", roomId="r100", ref="x")
        assert refused["type"] == "error" and refused["code"] == 429 and refused["ref"] == "x"
        assert refused["roomId"] == "r100" and "100 rooms" in refused["message"]
        assert await ws_listeners(server.url()) == 100
        await ws.ask(type="unsubscribe", roomId="r0")
        await ws.subscribe("r100")


@pytest.mark.parametrize(
    ("frame", "code", "words"),
    [
        ("{not json", 400, "well-formed JSON"),
        ("[1, 2]", 400, "JSON object"),
        ('{"n": NaN}', 400, "well-formed JSON"),
        ('{"type": "dance"}', 400, "type must be one of"),
        ("{}", 400, "type must be one of"),
        ('{"type": "subscribe"}', 422, "roomId"),
        ('{"type": "subscribe", "roomId": "bad room!"}', 422, "room"),
        ('{"type": "subscribe", "roomId": "r", "lastId": 5}', 422, "lastId"),
        ('{"type": "publish", "roomId": "r", "userId": "ann", "ref": "p"}', 422, "text"),
        ('{"type": "publish", "roomId": "r", "userId": "ann", "text": " ", "ref": "p"}', 422, "text"),
        ('{"type": "publish", "roomId": "r", "text": "no user", "ref": "p"}', 422, "userId"),
        ('{"type": "auth"}', 422, "token"),
    ],
)
async def test_a_malformed_frame_gets_an_error_and_the_connection_stays(
    frame: str, code: int, words: str
) -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        await ws.connection.send(frame)
        answer = await ws.next()
        assert answer["type"] == "error" and answer["code"] == code, answer
        assert words in answer["message"]
        if '"ref"' in frame:
            assert answer["ref"] == "p"
        assert await ws.ask(type="ping") == {"type": "pong"}


async def test_subscribing_twice_is_a_conflict() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        await ws.subscribe("r")
        again = await ws.ask(type="subscribe", roomId="r")
        assert again["type"] == "error" and again["code"] == 409 and again["roomId"] == "r"


async def test_a_binary_frame_closes_with_1003() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        await ws.subscribe("r")
        await ws.connection.send(b'{"type": "ping"}')
        assert await ws.closed_with() == 1003
        assert await server.listeners_become("r", 0)


async def test_a_frame_over_64_kib_closes_with_1009() -> None:
    async with serve("rest") as server, ws_connect(server.url(), max_size=None) as ws:
        await ws.send(type="publish", roomId="r", userId="ann", text="x" * 4000)
        assert (await ws.next())["type"] == "ack"
        await ws.send(type="publish", roomId="r", userId="ann", text="x" * (64 * 1024))
        assert await ws.closed_with() == 1009


async def test_a_client_that_vanishes_without_a_close_frame_frees_its_listeners() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        for room in ("a", "b", "c"):
            await ws.subscribe(room)
        assert await ws_listeners(server.url()) == 3
        ws.connection.transport.abort()  # a reset, no close frame
        for _ in range(100):
            if await ws_listeners(server.url()) == 0:
                break
            await asyncio.sleep(0.02)
        assert await ws_listeners(server.url()) == 0


async def test_the_server_stopping_closes_with_1001() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        await ws.subscribe("r")
        server.stopping.set()
        assert await ws.closed_with() == 1001


async def test_the_server_pings_a_connection_and_closes_one_that_never_answers() -> None:
    async with serve("rest", keepalive=0.3) as server:
        host, port = server.url().removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"GET /api/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Protocol: roomchat.v1\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101")
        started = time.monotonic()
        ping = await asyncio.wait_for(reader.readexactly(2), 5)
        assert ping[0] == 0x89  # a ping, which this client never answers
        await asyncio.wait_for(reader.read(), 5)  # ... so the server closes the connection
        assert time.monotonic() - started < 3
        writer.close()


async def test_a_websocket_outlives_the_request_head_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "BODY_TIMEOUT", 0.2)
    monkeypatch.setattr(guard, "HEAD_TIMEOUT", 0.2)
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        await asyncio.sleep(0.5)  # past both timeouts: the guard must not answer 408 on a WebSocket
        assert await ws.ask(type="ping") == {"type": "pong"}


async def test_a_plain_get_is_426() -> None:
    async with serve("rest", "html") as server, httpx.AsyncClient() as client:
        for url in (server.url("rest") + "/api/ws", server.url("html") + "/ws"):
            r = await client.get(url)
            assert r.status_code == 426 and r.json()["code"] == 426
            assert r.headers["upgrade"] == "websocket"


@pytest.mark.parametrize("asked", [None, ["roomchat.v0", "graphql-ws"]])
async def test_a_client_that_does_not_ask_for_roomchat_v1_is_refused_with_400(
    asked: list[str] | None,
) -> None:
    async with serve("rest", "html") as server:
        for base, path in ((server.url("rest"), "/api/ws"), (server.url("html"), "/ws")):
            with pytest.raises(InvalidStatus) as refused:
                async with ws_connect(base, path, subprotocols=asked):
                    pass
            assert refused.value.response.status_code == 400
            answer = json.loads(refused.value.response.body or b"{}")
            assert answer["code"] == 400 and "roomchat.v1" in answer["message"]
        async with ws_connect(server.url("rest")) as ws:  # one that asks is still served
            assert ws.connection.subprotocol == "roomchat.v1"
            assert await ws.ask(type="ping") == {"type": "pong"}


async def test_the_html_adapter_serves_it_at_ws() -> None:
    async with serve("html") as server, ws_connect(server.url("html"), "/ws") as ws:
        await ws.subscribe("lobby")
        ack = await ws.ask(type="publish", roomId="lobby", userId="ann", text="hi", ref=1)
        assert ack["ref"] == 1
        assert await ws.messages(1) == [ack["message"]]


# -- identity ---------------------------------------------------------------------


def token(sub: str = "ann", **claims: Any) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 600, **claims}, SECRET, algorithm="HS256")


def jwt_server() -> Any:
    return serve("rest", service_settings=ServiceSettings(auth=JwtAuthenticator(SECRET)))


async def test_under_jwt_a_token_in_the_upgrade_or_an_auth_frame() -> None:
    async with jwt_server() as running:
        headers = {"authorization": f"Bearer {token('ann', rooms=['team-*'])}"}
        async with ws_connect(running.url(), additional_headers=headers) as ws:
            await ws.subscribe("team-a")
            ack = await ws.ask(type="publish", roomId="team-a", text="hi", ref="1")
            assert ack["message"]["userId"] == "ann"  # filled in from the token
            assert await ws.messages(1) == [ack["message"]]
            denied = await ws.ask(type="subscribe", roomId="lobby")
            assert denied["code"] == 403 and denied["roomId"] == "lobby"
            as_bob = await ws.ask(type="publish", roomId="team-a", userId="bob", text="hi", ref="2")
            assert as_bob["code"] == 403 and as_bob["ref"] == "2"
        async with ws_connect(running.url()) as ws:
            refused = await ws.ask(type="subscribe", roomId="lobby")
            assert refused["type"] == "error" and refused["code"] == 401
            bad = await ws.ask(type="auth", token="not-a-token")
            assert bad["type"] == "error" and bad["code"] == 401
            assert await ws.ask(type="auth", token=token("cy")) == {"type": "authenticated", "userId": "cy"}
            await ws.subscribe("lobby")


async def test_under_jwt_a_bad_token_in_the_upgrade_is_401() -> None:
    async with jwt_server() as running:
        headers = {"authorization": "Bearer not-a-token"}
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(running.url(), additional_headers=headers):
                pass
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body or b"{}")["code"] == 401


async def test_under_jwt_a_room_expires_with_its_token_and_the_connection_stays() -> None:
    async with jwt_server() as running:
        short = token("ann", exp=int(time.time()) - 27)  # within the 30 s leeway for about 3 seconds
        headers = {"authorization": f"Bearer {short}"}
        async with ws_connect(running.url(), additional_headers=headers) as ws:
            await ws.subscribe("lobby")
            expired = await ws.next(timeout=10)
            assert expired == {"type": "expired", "roomId": "lobby", "lastEventId": None}
            stale = await ws.ask(type="subscribe", roomId="lobby")
            assert stale["code"] == 401
            assert (await ws.ask(type="auth", token=token()))["type"] == "authenticated"
            await ws.subscribe("lobby")



@pytest.mark.parametrize("adapter", ["rest", "html"])
async def test_a_page_on_another_origin_cannot_open_the_websocket(adapter: str) -> None:
    """A cross-site page would ride the visitor's `roomchat_token` cookie: refused at the upgrade."""
    path = "/api/ws" if adapter == "rest" else "/ws"
    async with serve(adapter) as running:
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(running.url(adapter), path=path, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with ws_connect(running.url(adapter), path=path, origin=running.url(adapter)) as ws:
            assert await ws.ask(type="ping") == {"type": "pong"}  # its own pages still may
