"""The WebSocket wire format of roomchat.v1: server frames as ready-to-write bytes.

Server frames are never masked (RFC 6455 5.1), so a frame's bytes depend only
on its payload: each message's `message` frame is built once, cached on the
message by `message.encode(ws_frame)`, and written as it is to every listener.
"""

from __future__ import annotations

import struct

from roomchat.core import EndReason, Gap, Listener, Message, to_json
from roomchat.core.message import dumps
from roomchat.core.presence import PresenceNote

SUBPROTOCOL = "roomchat.v1"
MAX_ROOMS = 100  # subscriptions on one connection
MAX_FRAME = 64 * 1024  # bytes of one client message; larger closes with 1009

_TEXT = 0x81  # FIN + text opcode
GOING_AWAY = 1001  # the close code when the server stops


def text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented text frame around a UTF-8 payload."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", _TEXT, size)
    elif size < 65536:
        head = struct.pack("!BBH", _TEXT, 126, size)
    else:
        head = struct.pack("!BBQ", _TEXT, 127, size)
    return head + payload


def ws_frame(message: Message) -> bytes:
    """The codec of the WebSocket wire format: a whole `message` frame (`presence`, for a note)."""
    if isinstance(message, PresenceNote):
        return control("presence", **message.to_data())
    return text_frame(b'{"type":"message","message":%s}' % message.encode(to_json))


def control(kind: str, **fields: object) -> bytes:
    """A server frame other than `message`, e.g. control("subscribed", roomId="r")."""
    return text_frame(dumps({"type": kind, **fields}))


def gap_frame(room_id: str, gap: Gap) -> bytes:
    return control("gap", roomId=room_id, lastEventId=gap.last_event_id, oldestId=gap.oldest_id)


def end_frame(listener: Listener) -> bytes:
    """The frame that tells the client why one room's subscription ended.

    SHUTDOWN and CLOSED have none: the connection itself closes (1001) or is gone.
    """
    room_id, last_id = listener.room_id, listener.last_id
    reason = listener.ended
    if reason is EndReason.DELETED:
        return control("deleted", roomId=room_id)
    if reason is EndReason.LAGGED:
        return control("lagged", roomId=room_id, lastEventId=last_id)
    if reason is EndReason.EXPIRED:
        return control("expired", roomId=room_id, lastEventId=last_id)
    if reason is EndReason.UNAVAILABLE:
        why = "the room's feed from the backend was lost; subscribe again with lastId"
        return control("error", roomId=room_id, code=503, message=why, lastEventId=last_id)
    return b""


def error_frame(
    code: int, message: str, ref: object = None, room_id: str | None = None, **extra: object
) -> bytes:
    fields: dict[str, object] = {"code": code, "message": message, **extra}
    if ref is not None:
        fields["ref"] = ref
    if room_id is not None:
        fields["roomId"] = room_id
    return control("error", **fields)

