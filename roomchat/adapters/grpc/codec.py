"""The gRPC wire format: messages as protobuf bytes, requests parsed at the edge."""

from __future__ import annotations

import json

from google.protobuf.message import DecodeError

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
