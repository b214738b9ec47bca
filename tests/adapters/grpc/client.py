"""gRPC test clients: the generated stub, and a client of the Go server's original proto."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.adapters.grpc.generated import message_pb2_grpc as pb_grpc


def target(url: str) -> str:
    return url.removeprefix("grpc://").removeprefix("grpcs://")


@contextlib.asynccontextmanager
async def room_stub(
    url: str, options: list[tuple[str, Any]] | None = None
) -> AsyncIterator[pb_grpc.RoomStub]:
    async with grpc.aio.insecure_channel(target(url), options=options) as channel:
        yield pb_grpc.RoomStub(channel)


async def post(stub: pb_grpc.RoomStub, room: str, text: str, user: str = "ann") -> str:
    """Posts and answers the stored message's id."""
    response = await stub.PostToRoom(pb.Message(userId=user, roomId=room, text=text))
    assert response.success
    return str(json.loads(response.data)["id"])


async def read(call: Any, count: int, timeout: float = 5.0) -> list[pb.Message]:
    """`count` messages from a StreamRoom call, failing if it ends first."""
    got: list[pb.Message] = []
    while len(got) < count:
        message = await asyncio.wait_for(call.read(), timeout)
        assert message is not grpc.aio.EOF, f"stream ended after {len(got)} of {count} messages"
        got.append(message)
    return got


def old_proto_classes() -> tuple[Any, Any, Any]:
    """Message, RoomRequest and RoomResponse as the Go server's original file had them:
    Message with userId=1 roomId=2 text=3, RoomRequest with userId=1 roomId=2."""
    file = descriptor_pb2.FileDescriptorProto(name="go/message.proto", package="message", syntax="proto3")
    kinds = descriptor_pb2.FieldDescriptorProto
    string, boolean, optional = kinds.TYPE_STRING, kinds.TYPE_BOOL, kinds.LABEL_OPTIONAL
    for name, fields in (
        ("Message", [("userId", string), ("roomId", string), ("text", string)]),
        ("RoomRequest", [("userId", string), ("roomId", string)]),
        ("RoomResponse", [("created", boolean), ("success", boolean), ("data", string)]),
    ):
        message = file.message_type.add(name=name)
        for number, (field, kind) in enumerate(fields, start=1):
            message.field.add(name=field, number=number, type=kind, label=optional, json_name=field)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return tuple(  # type: ignore[return-value]
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"message.{name}"))
        for name in ("Message", "RoomRequest", "RoomResponse")
    )
