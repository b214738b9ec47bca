"""The listeners of one room in this process, and the fan-out to them."""

from __future__ import annotations

import asyncio

from roomchat.core.listener import EndReason, Listener
from roomchat.core.message import Message


class Broadcaster:
    """Fans each message of one room out to this process's listeners."""

    __slots__ = ("listeners", "ready", "room_id")

    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.listeners: dict[Listener, None] = {}
        self.ready = asyncio.Event()  # set once the backend feeds this room

    def publish(self, message: Message) -> None:
        # The hot path. It must never await a listener, copy the message or
        # encode it per listener: a slow listener fills its own buffer and is
        # ended as lagged by `push`, and the room goes on.
        for listener in self.listeners:
            listener.push(message)

    def end_all(self, reason: EndReason) -> None:
        for listener in self.listeners:
            listener.end(reason)
