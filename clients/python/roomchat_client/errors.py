"""The one error type the client raises for what the server refused."""

from __future__ import annotations


class RoomchatError(Exception):
    """The server refused a request: `code` is the HTTP status it answered (401, 403, 422, ...)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
