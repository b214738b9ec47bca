"""Domain errors. Adapters translate them at the edge (HTTP status, gRPC code)."""

from __future__ import annotations

import math


class RoomchatError(Exception):
    """Base of every error the room service raises on purpose."""


class ValidationError(RoomchatError):
    """Input breaks a rule of the contract; `field` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Unavailable(RoomchatError):
    """Something the request needs cannot answer now; nothing was stored (HTTP 503, gRPC UNAVAILABLE)."""


class BackendUnavailable(Unavailable):
    """The backend cannot be reached; nothing was stored."""


class HookUnavailable(Unavailable):
    """The publish hook gave no answer in time, or one it should not have; nothing was stored."""


class Unauthenticated(RoomchatError):
    """No token, or a bad or expired one, where one is needed (HTTP 401, gRPC UNAUTHENTICATED)."""


class Forbidden(RoomchatError):
    """A valid token that does not allow this (HTTP 403, gRPC PERMISSION_DENIED)."""


class RateLimited(RoomchatError):
    """Over a per-user or per-IP limit (HTTP 429 + Retry-After, gRPC RESOURCE_EXHAUSTED)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_seconds(self) -> int:
        """`retry_after` in whole seconds, rounded up: a client that waits that long gets through."""
        return max(1, math.ceil(self.retry_after))


class Overloaded(RoomchatError):
    """Over a server-wide limit: too many streams or rooms (HTTP 503, gRPC RESOURCE_EXHAUSTED)."""
