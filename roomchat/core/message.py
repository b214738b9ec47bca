"""The message: what a room carries, with its wire encodings cached on it.

A message is encoded at most once per wire format, by whichever listener's
writer needs it first; every other listener shares the same bytes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from roomchat.core.validation import is_whole_number

Codec = Callable[["Message"], bytes]
"""Turns a message into the bytes of one wire format. Cached by its identity: codecs
are kept alive once used (`_CODECS`), so no other function can take their id."""

IdKey = tuple[int, int]

Stored = dict[int, Any]
"""A message as a backend keeps it in memory: its fields under the small keys below and
its encodings under their codecs' ids, in one dict of ints, strings and bytes. Such a
dict holds nothing the garbage collector tracks, so it is not tracked either: a history
of a million of them costs a full collection nothing (a Message object per stored
message would be walked at every one: 170 ms for 200,000)."""

_ID, _USER, _TEXT, _TIME, _MS, _SEQ, _COST = range(7)  # codecs' ids are addresses, far above
# _COST: what the message is counted for in its Ledger; -1 once it has left history.
_CODECS: set[Codec] = set()

# What a stored message costs besides its text and encodings: the dict and its
# field entries, and the id, user and time strings (measured on CPython 3.11).
STORED_OVERHEAD = 900
ENCODING_OVERHEAD = 33 + 48  # a bytes object's header, and its entry in the dict


class Ledger:
    """Bytes of memory that stored messages hold, their encodings included (the
    memory backend's `--history-bytes` count). An encoding cached on a message
    that is still stored is added as it is made."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0

    def store(self, message: Message) -> Stored:
        """`message` as kept in history, counted from now on: the dict, its strings (the
        text at its real size and, for a text that is not ASCII, the UTF-8 copy protobuf
        caches inside the str), and its encodings, those made later included."""
        text = message.text
        ms, seq = message.key
        stored: Stored = {
            _ID: message.id, _USER: message.user_id, _TEXT: text, _TIME: message.time, _MS: ms, _SEQ: seq
        }
        cost = STORED_OVERHEAD + sys.getsizeof(text) + len(message.user_id)
        if not text.isascii():
            cost += len(text.encode()) + 1
        if message._encoded:  # encoded before it was stored
            _CODECS.update(message._encoded)
            for codec, data in message._encoded.items():
                stored[id(codec)] = data
                cost += len(data) + ENCODING_OVERHEAD
        stored[_COST] = cost
        message._stored, message.ledger = stored, self
        self.bytes += cost
        return stored

    def release(self, stored: Stored) -> None:
        """`stored` leaves history: no longer counted, nor its later encodings."""
        cost = stored[_COST]
        if cost >= 0:
            self.bytes -= cost
            stored[_COST] = -1


def stored_key(stored: Stored) -> IdKey:
    return stored[_MS], stored[_SEQ]


def stored_id(stored: Stored) -> str:
    return stored[_ID]  # type: ignore[no-any-return]


class Message:
    """One message. Immutable by convention; `encode` caches per codec.

    A message restored from a backend's history (`restored`) shares that stored
    dict, so what one listener encodes every later replay reuses. Each Message
    also keeps its own cache by codec in front of it: the lookup every delivery
    makes stays one dict lookup, as before history was stored untracked.
    """

    __slots__ = ("_encoded", "_stored", "id", "key", "ledger", "room_id", "text", "time", "user_id")

    def __init__(self, id: str, room_id: str, user_id: str, text: str, time: str) -> None:
        self.id = id
        self.room_id = room_id
        self.user_id = user_id
        self.text = text
        self.time = time
        self.key: IdKey = id_key(id) or (0, 0)
        self._encoded: dict[Codec, bytes] = {}
        self._stored: Stored | None = None  # shared with a backend's history, if stored there
        self.ledger: Ledger | None = None

    @classmethod
    def restored(cls, room_id: str, stored: Stored, ledger: Ledger) -> Message:
        """A message of `ledger`'s history, from what it stored."""
        message = cls.__new__(cls)
        message.id, message.room_id, message.user_id = stored[_ID], room_id, stored[_USER]
        message.text, message.time, message.key = stored[_TEXT], stored[_TIME], (stored[_MS], stored[_SEQ])
        message._encoded, message._stored, message.ledger = {}, stored, ledger
        return message

    def encode(self, codec: Codec) -> bytes:
        """The bytes of this message in one wire format, computed once."""
        try:
            return self._encoded[codec]
        except KeyError:
            return self._encode(codec)

    def _encode(self, codec: Codec) -> bytes:
        stored = self._stored
        if stored is None:
            data = self._encoded[codec] = codec(self)
            return data
        _CODECS.add(codec)
        shared: bytes | None = stored.get(id(codec))
        if shared is None:
            shared = stored[id(codec)] = codec(self)
            if self.ledger is not None and stored[_COST] >= 0:  # still in history: counted
                stored[_COST] += len(shared) + ENCODING_OVERHEAD
                self.ledger.bytes += len(shared) + ENCODING_OVERHEAD
        self._encoded[codec] = shared
        return shared

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
