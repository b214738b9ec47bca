"""The gRPC wire format: messages as protobuf bytes, requests parsed at the edge."""

from __future__ import annotations

import json
import struct
from typing import Any

from google.protobuf.message import DecodeError
from grpclib.const import Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.core import Message, ValidationError

MAX_LAST_ID = 128  # longer than any id the server makes; it would not fit in metadata


def to_protobuf(message: Message) -> bytes:
    """The codec of the gRPC stream: one serialized `message.Message`.

    Used through `message.encode(to_protobuf)`, so each message is serialized
    once and every gRPC listener is handed the same bytes.
    """
    return pb.Message(
        userId=message.user_id,
        roomId=message.room_id,
        text=message.text,
        id=message.id,
        time=message.time,
    ).SerializeToString()


def grpc_frame(message: Message) -> bytes:
    """One stream message on the wire: gRPC's 5-byte prefix (not compressed, length)
    and the protobuf bytes. Used through `message.encode(grpc_frame)`: framed once per
    message, and every listener's HTTP/2 DATA frame carries the same bytes."""
    data = message.encode(to_protobuf)
    return b"\x00" + struct.pack(">I", len(data)) + data


class Codec:
    """grpclib's codec: the Room rpcs take and give bytes (parsed and built here, so a
    bad request is INVALID_ARGUMENT and a stored message's bytes are reused), and the
    health and reflection services protobuf messages."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        if message_type is bytes:
            return bytes(message)
        return bytes(message.SerializeToString())

    def decode(self, data: bytes, message_type: Any) -> Any:
        return data if message_type is bytes else decode(data, message_type)


def decode(data: bytes, message_type: Any) -> Any:
    """A protobuf message of the given type; INVALID_ARGUMENT if the bytes are not one."""
    try:
        return message_type.FromString(data)
    except DecodeError:
        raise GRPCError(Status.INVALID_ARGUMENT, "the request is not a valid protobuf message") from None


async def read_message(stream: Stream[Any, Any], limit: int) -> bytes | None:
    """The next request message of a call as bytes, None once the client has sent all.

    Past `limit` bytes it is refused (RESOURCE_EXHAUSTED) from its length prefix,
    before it is read: grpclib's own `recv_message` reads any length.
    """
    h2_stream = stream._stream
    prefix = await h2_stream.recv_data(5)
    if not prefix:
        return None
    if len(prefix) < 5:
        raise GRPCError(Status.INVALID_ARGUMENT, "the request message is cut short")
    if prefix[0]:
        raise GRPCError(Status.UNIMPLEMENTED, "compressed requests are not supported")
    size = int.from_bytes(prefix[1:], "big")
    if size > limit:
        raise GRPCError(
            Status.RESOURCE_EXHAUSTED, f"the request is {size} bytes, more than the {limit} allowed"
        )
    return await h2_stream.recv_data(size)


async def read_request(stream: Stream[Any, Any], limit: int) -> bytes:
    """The one request message of a call with a unary request."""
    data = await read_message(stream, limit)
    if data is None:
        raise GRPCError(Status.INVALID_ARGUMENT, "the call has no request message")
    return data


def room_request(data: bytes) -> pb.RoomRequest:
    request = pb.RoomRequest()
    _parse(request, data)
    last_id = request.lastId
    if len(last_id) > MAX_LAST_ID or not (last_id.isascii() and last_id.isprintable()):
        raise ValidationError("lastId", "lastId must be a message id")
    return request


def posted(data: bytes) -> pb.Message:
    message = pb.Message()
    _parse(message, data)
    return message


def response(*, success: bool = True, created: bool = False, data: bytes = b"") -> bytes:
    return pb.RoomResponse(success=success, created=created, data=data.decode()).SerializeToString()


def gap_json(last_event_id: str, oldest_id: str | None) -> str:
    """The SSE `gap` event's data, ASCII-only so that it fits in gRPC metadata."""
    return json.dumps({"lastEventId": last_event_id, "oldestId": oldest_id}, separators=(",", ":"))


def _parse(into: pb.Message | pb.RoomRequest, data: bytes) -> None:
    try:
        into.ParseFromString(data)
    except DecodeError:
        raise ValidationError("request", "the request is not a valid protobuf message") from None
