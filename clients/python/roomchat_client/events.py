"""What a subscription yields: the contract's frames as typed dataclasses, fields in snake_case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message. `time` is RFC 3339 UTC with milliseconds, as the server sent it."""

    id: str
    room_id: str
    user_id: str
    text: str
    time: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        return cls(data["id"], data["roomId"], data["userId"], data["text"], data["time"])


@dataclass(frozen=True, slots=True)
class Gap:
    """History no longer holds everything after `last_event_id`: what follows starts at `oldest_id`."""

    room_id: str
    last_event_id: str | None
    oldest_id: str | None


@dataclass(frozen=True, slots=True)
class Presence:
    """Who arrived in and left the room (subscribed with `presence=True`); at most one a second."""

    room_id: str
    joined: tuple[str, ...]
    left: tuple[str, ...]


Event = Message | Gap | Presence


def event_of(frame: dict[str, Any]) -> Event | None:
    """The event a server frame carries for a subscription, or None for any other frame."""
    kind = frame.get("type")
    if kind == "message":
        return Message.from_json(frame["message"])
    if kind == "gap":
        return Gap(frame["roomId"], frame.get("lastEventId"), frame.get("oldestId"))
    if kind == "presence":
        return Presence(frame["roomId"], tuple(frame.get("joined", ())), tuple(frame.get("left", ())))
    return None
