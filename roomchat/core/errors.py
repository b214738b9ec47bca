"""Domain errors. Adapters translate them at the edge (HTTP status, gRPC code)."""

from __future__ import annotations


class RoomchatError(Exception):
    """Base of every error the room service raises on purpose."""


class ValidationError(RoomchatError):
    """Input breaks a rule of the contract; `field` names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class BackendUnavailable(RoomchatError):
    """The backend cannot be reached; nothing was stored."""
