"""Server-sent event streams, shared by the `rest` and `html` adapters.

Raw ASGI: each message's frame is encoded once (cached on the message) and a
writer sends everything pending in one `send`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from roomchat.core import EndReason, Listener, Manager, Message, to_json
from roomchat.core.message import dumps

Scope = dict[str, Any]
Receive = Any
Send = Any

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
KEEPALIVE = b": keepalive\n\n"


def sse_frame(message: Message) -> bytes:
    """The codec of the SSE wire format: one `message` event."""
    return b"id: %s\nevent: message\ndata: %s\n\n" % (message.id.encode(), message.encode(to_json))


def event(name: str, data: object) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), dumps(data))


def _end_frame(listener: Listener) -> bytes:
    if listener.ended is EndReason.DELETED:
        return event("deleted", {"roomId": listener.room_id})
    if listener.ended is EndReason.LAGGED:
        return event("lagged", {"lastEventId": listener.last_id})
    return b""


def resume_id(scope: Mapping[str, Any], query: Mapping[str, str]) -> str | None:
    """The id to resume after: `Last-Event-ID` header, else `lastEventId` query."""
    for name, value in scope["headers"]:
        if name == b"last-event-id":
            return value.decode("latin-1").strip() or None
    return query.get("lastEventId") or None


class EventStream:
    """An ASGI response that streams one room to one client."""

    def __init__(
        self, manager: Manager, room_id: str, after: str | None, transport: str, keepalive: float
    ) -> None:
        self._manager = manager
        self._room_id = room_id
        self._after = after
        self._transport = transport
        self._keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self._manager.listen(
            self._room_id, self._after, transport=self._transport
        ) as listener:
            watcher = asyncio.ensure_future(_until_disconnect(receive, listener))
            try:
                await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
                await _pump(listener, send, self._keepalive)
            finally:
                watcher.cancel()


async def _pump(listener: Listener, send: Send, keepalive: float) -> None:
    first = b": connected\n\n"
    if listener.gap is not None:
        gap = listener.gap
        first = event("gap", {"lastEventId": gap.last_event_id, "oldestId": gap.oldest_id})
    await send({"type": "http.response.body", "body": first, "more_body": True})
    while True:
        if not await listener.wait(keepalive):
            await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
            continue
        batch = listener.take()
        if batch:
            body = b"".join([m.encode(sse_frame) for m in batch])
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if listener.done:
            break
    if listener.ended is not EndReason.CLOSED:
        await send({"type": "http.response.body", "body": _end_frame(listener)})


async def _until_disconnect(receive: Receive, listener: Listener) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    listener.end(EndReason.CLOSED)
