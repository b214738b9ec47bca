"""Idempotency keys on every transport: the HTTP header (REST and the chat page's
POST), gRPC metadata and the WebSocket `key`; a retry answers the first message."""

from __future__ import annotations

import grpc
import httpx

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.bootstrap import ServiceSettings
from tests.adapters.grpc.client import room_stub
from tests.support import serve
from tests.ws_client import ws_connect


async def test_rest_and_html_replay_with_200_and_idempotent_replayed(client: httpx.AsyncClient) -> None:
    async with serve("rest", "html") as server, ws_connect(server.url()) as ws:
        await ws.subscribe("r")
        for url in (server.url("rest") + "/api/room/r", server.url("html") + "/room/r"):
            key = {"idempotency-key": f"key for {url}"}
            first = await client.post(url, json={"userId": "ann", "text": url}, headers=key)
            assert first.status_code == 201 and "idempotent-replayed" not in first.headers
            again = await client.post(url, json={"userId": "ann", "text": url}, headers=key)
            assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
            assert again.json() == first.json()
            assert await ws.messages(1) == [first.json()["message"]]
        assert await ws.ask(type="ping") == {"type": "pong"}  # nothing else was broadcast
        history = await client.get(server.url() + "/api/room/r/messages")
        assert len(history.json()["messages"]) == 2


async def test_a_bad_key_is_422(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        r = await client.post(
            server.url() + "/api/room/r",
            json={"userId": "ann", "text": "hi"},
            headers={"idempotency-key": "k" * 65},
        )
        assert r.status_code == 422 and "idempotency key" in r.json()["message"]


async def test_websocket_publish_with_a_key_acks_the_first_message() -> None:
    async with serve("rest") as server, ws_connect(server.url()) as ws:
        await ws.subscribe("r")
        publish = {"type": "publish", "roomId": "r", "userId": "ann", "text": "once", "key": "k"}
        first = await ws.ask(**publish, ref="1")
        assert await ws.messages(1) == [first["message"]]
        again = await ws.ask(**publish, ref="2")
        assert again == {"type": "ack", "ref": "2", "message": first["message"], "replayed": True}
        assert await ws.ask(type="ping") == {"type": "pong"}  # no second message frame
        bad = await ws.ask(**{**publish, "key": 5}, ref="3")
        assert bad["type"] == "error" and bad["code"] == 422 and bad["ref"] == "3"


async def test_grpc_metadata_idempotency_key() -> None:
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        request = pb.Message(userId="ann", roomId="r", text="once")
        meta = (("idempotency-key", "k"),)
        first = await stub.PostToRoom(request, metadata=meta)
        assert first.created
        call = stub.PostToRoom(request, metadata=meta)
        again = await call
        assert not again.created and again.data == first.data
        assert ("idempotent-replayed", "true") in tuple(await call.trailing_metadata() or ())
        other = await stub.PostToRoom(request)
        assert other.created and other.data != first.data
        try:
            await stub.PostToRoom(request, metadata=(("idempotency-key", "k" * 65),))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        else:
            raise AssertionError("a bad key was accepted")


async def test_a_retry_after_its_message_left_history_is_answered(client: httpx.AsyncClient) -> None:
    async with serve("rest", service_settings=ServiceSettings(history=5)) as server:
        url, key = server.url() + "/api/room/r", {"idempotency-key": "k"}
        first = await client.post(url, json={"userId": "ann", "text": "once"}, headers=key)
        for i in range(12):
            assert (await client.post(url, json={"userId": "bob", "text": f"m{i}"})).status_code == 201
        again = await client.post(url, json={"userId": "ann", "text": "once"}, headers=key)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        other = await client.post(url, json={"userId": "ann", "text": "changed"}, headers=key)
        assert other.status_code == 422 and "another text" in other.json()["message"]
        history = (await client.get(url + "/messages")).json()["messages"]
        assert [m["text"] for m in history] == [f"m{i}" for i in range(7, 12)]  # no duplicate
