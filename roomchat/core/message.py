"""The message: what a room carries, with its wire encodings cached on it.

A message is encoded at most once per wire format, by whichever listener's
writer needs it first; every other listener shares the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from roomchat.core.validation import is_whole_number

Codec = Callable[["Message"], bytes]
"""Turns a message into the bytes of one wire format. Used as a cache key."""

IdKey = tuple[int, int]


class Message:
    """One stored message. Immutable by convention; `encode` caches per codec."""

    __slots__ = ("_encoded", "id", "key", "room_id", "text", "time", "user_id")

    def __init__(self, id: str, room_id: str, user_id: str, text: str, time: str) -> None:
        self.id = id
        self.room_id = room_id
        self.user_id = user_id
        self.text = text
        self.time = time
        self.key: IdKey = id_key(id) or (0, 0)
        self._encoded: dict[Codec, bytes] = {}

    def encode(self, codec: Codec) -> bytes:
        """The bytes of this message in one wire format, computed once."""
        try:
            return self._encoded[codec]
        except KeyError:
            data = self._encoded[codec] = codec(self)
            return data

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "roomId": self.room_id,
            "userId": self.user_id,
            "text": self.text,
            "time": self.time,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.room_id, self.id))

    def __repr__(self) -> str:
        return f"Message({self.to_dict()!r})"


def to_json(message: Message) -> bytes:
    """The message as compact UTF-8 JSON: the one JSON codec of every transport."""
    return dumps(message.to_dict())


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def id_key(message_id: str) -> IdKey | None:
    """Orders ids of the form `<milliseconds>-<sequence>`; None for any other string.

    Ids are opaque to clients; the server orders them to join a replay from
    history to the live stream without a gap or a duplicate.
    """
    ms, sep, seq = message_id.partition("-")
    if len(message_id) > 42 or not sep or not (is_whole_number(ms) and is_whole_number(seq)):
        return None
    return int(ms), int(seq)


def format_time(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2026-11-29T10:00:00.123Z."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
