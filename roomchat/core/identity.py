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


def room_patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for room patterns where `*` matches any run of room-id characters.

    None when there are no patterns; ValueError names a pattern that cannot match a room id.
    """
    parts = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not _PATTERN_CHARS.fullmatch(pattern):
            raise ValueError(f"room pattern {pattern!r} must be 1-64 characters of A-Z a-z 0-9 - _ . *")
        parts.append(".*".join(re.escape(piece) for piece in pattern.split("*")))
    if not parts:
        return None
    return re.compile("|".join(f"(?:{part})" for part in parts))


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
    rooms: re.Pattern[str] | None = None  # may read and post; None: every room
    read: re.Pattern[str] | None = None  # may only read
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
        return self.all_rooms or (self.rooms is not None and self.rooms.fullmatch(room_id) is not None)


OPEN = Identity(open=True)
"""`--auth none` with no client address known."""


class Authenticator(Protocol):
    """Turns a request's token (or its absence) into an Identity. Raises Unauthenticated."""

    def identify(self, token: str | None, address: str | None = None) -> Identity: ...


class OpenAuthenticator:
    """`--auth none`: every caller may do anything, as on the Go server."""

    def identify(self, token: str | None, address: str | None = None) -> Identity:
        return Identity(address=address, open=True)
