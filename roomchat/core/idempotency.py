"""Idempotency keys: what a backend keeps of a keyed post, and how it answers a retry.

A key is kept for KEY_TTL (24 hours, the contract's "Publishing exactly once")
whatever happens to its message: it may leave history long before. What is
kept is small and the same on every backend: the key (with its user and room),
the message's id and time, and a 16-byte fingerprint of its text, never the
text itself. A retry is answered with the first message as history holds it;
once the message has left history, with the same id and time and the retry's
own text when that text is the first one's (its fingerprint matches), and
refused (422) when it is not, as draft-ietf-httpapi-idempotency-key-header
says of a key reused for another request. Either way nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict

from roomchat.core.errors import ValidationError
from roomchat.core.message import IdKey, Message, format_time

KEY_TTL = 24 * 3600  # seconds a key answers its first message
KEY_TTL_MS = KEY_TTL * 1000
KEY_COST = 330  # bytes of memory one kept key holds in KeptKeys (two small bytes objects, an entry)
_RECORD = struct.Struct("<qqq16s")  # id (ms, seq), time in ms, the text's fingerprint


def fingerprint(text: str) -> bytes:
    """16 bytes that tell a retry's text from another (BLAKE2b)."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def replayed(first: Message | None, room_id: str, user_id: str, text: str, kept: KeptKey) -> Message:
    """The answer to a retry with a kept key: `first` if history still holds it, else the
    message rebuilt from what was kept, if `text` is the first one's; else ValidationError."""
    if first is not None:
        return first
    if fingerprint(text) != kept.text_fingerprint:
        raise ValidationError(
            "key", "this idempotency key was used with another text, whose message is no longer in history"
        )
    ms, seq = kept.message_key
    return Message(f"{ms}-{seq}", room_id, user_id, text, format_time(kept.time_ms))


class KeptKey:
    """What is kept of one keyed post."""

    __slots__ = ("message_key", "text_fingerprint", "time_ms")

    def __init__(self, message_key: IdKey, time_ms: int, text_fingerprint: bytes) -> None:
        self.message_key = message_key
        self.time_ms = time_ms
        self.text_fingerprint = text_fingerprint


class KeptKeys:
    """The keys of one process's posts, in memory, for KEY_TTL at most and `limit` at most.

    Each is two small bytes objects in one insertion-ordered table: nothing the
    garbage collector walks but the table, expired keys leave from its front, and
    past `limit` the oldest go first (a retry older than that may then be stored again).
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._table: OrderedDict[bytes, bytes] = OrderedDict()
        self._pruned = 0  # when expired keys were last dropped (ms): at most once a second

    def __len__(self) -> int:
        return len(self._table)

    @staticmethod
    def slot(room_id: str, user_id: str, key: str) -> bytes:
        """Where a key is kept: 16 bytes for the key, its user and its room."""
        # The lengths keep room, user and key apart whatever characters they hold.
        joined = f"{len(room_id)}:{room_id}{len(user_id)}:{user_id}{key}"
        return hashlib.blake2b(joined.encode(), digest_size=16).digest()

    def get(self, slot: bytes, now_ms: int) -> KeptKey | None:
        record = self._table.get(slot)
        if record is None:
            return None
        ms, seq, time_ms, text = _RECORD.unpack(record)
        if time_ms + KEY_TTL_MS <= now_ms:
            return None
        return KeptKey((ms, seq), time_ms, text)

    def put(self, slot: bytes, message: Message, time_ms: int) -> None:
        """Keep the key of `slot` for `message`, stored at `time_ms` (its time)."""
        self._table.pop(slot, None)  # an expired one of the same name: the new one goes to the back
        self._table[slot] = _RECORD.pack(*message.key, time_ms, fingerprint(message.text))

    def prune(self, now_ms: int) -> None:
        """Drop the expired keys (at most once a second), and the oldest past `limit`."""
        table = self._table
        if now_ms < self._pruned + 1000 and len(table) <= self._limit:
            return
        self._pruned = now_ms
        while table:
            slot = next(iter(table))
            if len(table) <= self._limit and _RECORD.unpack(table[slot])[2] + KEY_TTL_MS > now_ms:
                return
            del table[slot]

    def clear(self) -> None:
        self._table.clear()

