"""Who is asking, and what they may do (contract: Identity and permissions).

Policy only: a token is verified by an `Authenticator` (the JWT one lives in
`roomchat.tokens`, outside the core); the room service asks the `Identity` it
gets back before every read, post and delete.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from roomchat.core.errors import Forbidden, Unauthenticated

_PATTERN_CHARS = re.compile(r"[A-Za-z0-9._*-]{1,64}")


class RoomPatterns:
    """Room patterns where `*` matches any run of room-id characters, matched in linear time.

    A regex such as `.*a.*a.*a.*b` backtracks: a token's `*a*a*a*a*a*a*b` took
    1.8 s to refuse one 64-character room id. Here each pattern is its literal
    pieces between the stars: the first must begin the id, the last end it, and
    each one between is found leftmost after the one before (taking the earliest
    place never loses a match), so one pattern costs a few `str.find`s.
    """

    __slots__ = ("_pieces",)

    def __init__(self, patterns: Iterable[str]) -> None:
        self._pieces = tuple(tuple(pattern.split("*")) for pattern in patterns)

    def fullmatch(self, room_id: str) -> bool:
        """Whether `room_id` matches any of the patterns."""
        return any(_glob(pieces, room_id) for pieces in self._pieces)


def _glob(pieces: tuple[str, ...], text: str) -> bool:
    if len(pieces) == 1:  # no star
        return text == pieces[0]
    first, last = pieces[0], pieces[-1]
    if len(first) + len(last) > len(text) or not text.startswith(first) or not text.endswith(last):
        return False
    at, end = len(first), len(text) - len(last)
    for piece in pieces[1:-1]:
        found = text.find(piece, at, end)
        if found < 0:
            return False
        at = found + len(piece)
    return True


def room_patterns(patterns: Iterable[str]) -> RoomPatterns | None:
    """The room patterns as one matcher; None when there are none.

    ValueError names a pattern that cannot match a room id.
    """
    checked = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not _PATTERN_CHARS.fullmatch(pattern):
            raise ValueError(f"room pattern {pattern!r} must be 1-64 characters of A-Z a-z 0-9 - _ . *")
        checked.append(pattern)
    return RoomPatterns(checked) if checked else None


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller of one request or stream.

    `open` is the Go server's model (`--auth none`): anyone may do anything and
    posts carry the userId they give. Otherwise `user_id` is the token's `sub`,
    or None for a request without a token.
    """

    user_id: str | None = None
    address: str | None = None  # the client's IP, for per-IP limits
    open: bool = False
    admin: bool = False
    rooms: RoomPatterns | None = None  # may read and post; None: every room
    read: RoomPatterns | None = None  # may only read
    all_rooms: bool = True  # no `rooms` claim
    anonymous_read: bool = False  # a request without a token may read
    expires: float | None = None  # the token's `exp`, in seconds since the epoch

    @property
    def anonymous(self) -> bool:
        return self.user_id is None and not self.open

    @property
    def limit_key(self) -> str:
        """What a per-user limit counts: the user, or the client IP when anonymous."""
        if self.user_id is not None and not self.open:
            return f"user:{self.user_id}"
        return f"ip:{self.address or '?'}"

    def check_read(self, room_id: str) -> None:
        if self.open or self.admin:
            return
        if self.anonymous:
            if self.anonymous_read:
                return
            raise Unauthenticated("a token is needed")
        if self._may_post(room_id) or (self.read is not None and self.read.fullmatch(room_id)):
            return
        raise Forbidden(f"the token does not allow reading room {room_id}")

    def check_post(self, room_id: str) -> None:
        if self.open or self.admin:
            return
        if self.anonymous:
            raise Unauthenticated("a token is needed to post")
        if not self._may_post(room_id):
            raise Forbidden(f"the token does not allow posting in room {room_id}")

    def check_delete(self, room_id: str) -> None:
        if self.open or self.admin:
            return
        if self.anonymous:
            raise Unauthenticated("a token is needed to delete a room")
        raise Forbidden("only an admin token may delete rooms")

    def poster(self, user_id: object) -> object:
        """The userId a post is made under: the body's when open or admin, else the token's `sub`.

        A body that names another user is 403; a missing one is filled in.
        The answer is validated by the caller like any userId.
        """
        if self.open:
            return user_id
        if self.admin and user_id is not None:
            return user_id
        if user_id is not None and (not isinstance(user_id, str) or user_id.strip() != self.user_id):
            raise Forbidden("userId must be the token's subject")
        return self.user_id

    def _may_post(self, room_id: str) -> bool:
        return self.all_rooms or (self.rooms is not None and self.rooms.fullmatch(room_id))


OPEN = Identity(open=True)
"""`--auth none` with no client address known."""


class Authenticator(Protocol):
    """Turns a request's token (or its absence) into an Identity. Raises Unauthenticated."""

    def identify(self, token: str | None, address: str | None = None) -> Identity: ...


class OpenAuthenticator:
    """`--auth none`: every caller may do anything, as on the Go server."""

    def identify(self, token: str | None, address: str | None = None) -> Identity:
        return Identity(address=address, open=True)
