"""The four rpcs of `message.Room` against a real grpc.aio server on a free port."""

from __future__ import annotations

import json

import grpc
import httpx
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from tests.adapters.grpc.client import old_proto_classes, post, read, room_stub, target
from tests.support import serve, stream


async def test_a_posted_message_reaches_a_stream_with_its_id_and_time() -> None:
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        call = stub.StreamRoom(pb.RoomRequest(roomId="lobby"))
        assert await call.initial_metadata() == ()  # listening: headers come first
        response = await stub.PostToRoom(pb.Message(userId=" ann ", roomId="lobby", text="hello"))
        stored = json.loads(response.data)
        assert (response.success, response.created) == (True, True)
        assert stored["userId"] == "ann" and stored["text"] == "hello" and stored["roomId"] == "lobby"
        [got] = await read(call, 1)
        assert (got.id, got.time, got.userId, got.roomId, got.text) == (
            stored["id"],
            stored["time"],
            "ann",
            "lobby",
            "hello",
        )
        assert got.time.endswith("Z") and len(got.time) == len("2026-11-29T10:00:00.123Z")
        call.cancel()


async def test_get_room_answers_room_info_and_whether_it_was_new() -> None:
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        fresh = await stub.GetRoom(pb.RoomRequest(roomId="new"))
        assert (fresh.success, fresh.created) == (True, True)
        assert json.loads(fresh.data) == {"roomId": "new", "listeners": 0, "lastId": None}
        last = await post(stub, "new", "first")
        call = stub.StreamRoom(pb.RoomRequest(roomId="new"))
        await call.initial_metadata()
        used = await stub.GetRoom(pb.RoomRequest(roomId="new"))
        assert used.created is False
        assert json.loads(used.data) == {"roomId": "new", "listeners": 1, "lastId": last}
        call.cancel()


async def test_delete_ends_streams_on_every_transport_and_drops_history() -> None:
    async with serve("grpc", "rest") as server, room_stub(server.url("grpc")) as stub:
        await post(stub, "gone", "before")
        call = stub.StreamRoom(pb.RoomRequest(roomId="gone"))
        await call.initial_metadata()
        async with httpx.AsyncClient() as client, stream(client, f"{server.url()}/api/stream/gone") as sse:
            await sse.comment()  # connected
            response = await stub.DeleteRoom(pb.RoomRequest(roomId="gone"))
            assert response.success
            deleted = await sse.next()
            assert deleted is not None and deleted.event == "deleted"
            assert await sse.next() is None
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
        assert ("roomchat-end", "deleted") in tuple(await call.trailing_metadata())
        info = json.loads((await stub.GetRoom(pb.RoomRequest(roomId="gone"))).data)
        assert info["lastId"] is None


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (pb.Message(userId="ann", roomId="", text="hi"), "roomId"),
        (pb.Message(userId="ann", roomId="no spaces", text="hi"), "roomId"),
        (pb.Message(userId="ann", roomId="r" * 65, text="hi"), "roomId"),
        (pb.Message(userId="  ", roomId="r", text="hi"), "userId"),
        (pb.Message(userId="a\x07b", roomId="r", text="hi"), "userId"),
        (pb.Message(userId="u" * 65, roomId="r", text="hi"), "userId"),
        (pb.Message(userId="ann", roomId="r", text=""), "text"),
        (pb.Message(userId="ann", roomId="r", text=" \n\t"), "text"),
        (pb.Message(userId="ann", roomId="r", text="a\x00b"), "text"),
        (pb.Message(userId="ann", roomId="r", text="x" * 4097), "text"),
    ],
)
async def test_invalid_posts_are_invalid_argument_naming_the_field(message: pb.Message, field: str) -> None:
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.PostToRoom(message)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in caught.value.details()
        assert ("roomchat-field", field) in tuple(caught.value.trailing_metadata())
        info = json.loads((await stub.GetRoom(pb.RoomRequest(roomId="r"))).data)
        assert info["lastId"] is None  # nothing was stored


@pytest.mark.parametrize(
    ("method", "request_bytes", "field"),
    [
        ("StreamRoom", pb.RoomRequest(roomId="bad room").SerializeToString(), "roomId"),
        ("StreamRoom", pb.RoomRequest(roomId="r", lastId="x" * 200).SerializeToString(), "lastId"),
        ("GetRoom", pb.RoomRequest(roomId="").SerializeToString(), "roomId"),
        ("DeleteRoom", pb.RoomRequest(roomId="a/b").SerializeToString(), "roomId"),
        ("PostToRoom", b"\x0a\x05ab", "request"),  # truncated protobuf
        ("PostToRoom", b"\x0a\x02\xff\xfe\x12\x01r\x1a\x01t", "request"),  # userId not UTF-8
    ],
)
async def test_invalid_requests_on_every_rpc_are_invalid_argument(
    method: str, request_bytes: bytes, field: str
) -> None:
    async with serve("grpc") as server, grpc.aio.insecure_channel(target(server.url("grpc"))) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if method == "StreamRoom":
                await channel.unary_stream(f"/message.Room/{method}")(request_bytes).read()
            else:
                await channel.unary_unary(f"/message.Room/{method}")(request_bytes)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (caught.value.details() or "")


async def test_a_client_of_the_go_servers_three_field_proto_posts_and_streams() -> None:
    old_message, old_request, old_response = old_proto_classes()
    async with serve("grpc") as server, grpc.aio.insecure_channel(target(server.url("grpc"))) as channel:
        stream_room = channel.unary_stream(
            "/message.Room/StreamRoom",
            request_serializer=old_request.SerializeToString,
            response_deserializer=old_message.FromString,
        )
        post_to_room = channel.unary_unary(
            "/message.Room/PostToRoom",
            request_serializer=old_message.SerializeToString,
            response_deserializer=old_response.FromString,
        )
        call = stream_room(old_request(userId="gopher", roomId="legacy"))
        await call.initial_metadata()
        response = await post_to_room(old_message(userId="gopher", roomId="legacy", text="still here"))
        assert response.success and json.loads(response.data)["text"] == "still here"
        got = await call.read()
        assert (got.userId, got.roomId, got.text) == ("gopher", "legacy", "still here")
        call.cancel()
