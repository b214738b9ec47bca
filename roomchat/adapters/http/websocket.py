"""The WebSocket endpoint (contract: WebSocket): many rooms on one connection.

One task per connection reads the client's frames and answers them in order.
Room messages never pass through it: a subscription's listener marks the
connection, and once per event-loop turn the flusher writes every marked
subscription's pending frames (each built once per message and shared by
every listener, `message.encode(ws_frame)`) to the socket in one write, under
ASGI (see roomchat.adapters.http.ws_protocol for why). While the socket is
full nothing is written; a subscription whose buffer fills meanwhile ends as
`lagged`, and the room never waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from roomchat.adapters import AdapterSettings
from roomchat.adapters.http.bodies import parse_object, text_field
from roomchat.adapters.http.errors import BadRequest, error
from roomchat.adapters.http.flushing import flusher
from roomchat.adapters.http.identity import client_address, identify
from roomchat.adapters.http.sse import RAW_SEND, Receive, Scope, Send
from roomchat.adapters.http.ws_frames import (
    MAX_ROOMS,
    SUBPROTOCOL,
    control,
    end_frame,
    error_frame,
    gap_frame,
    text_frame,
    ws_frame,
)
from roomchat.adapters.http.ws_protocol import RoomchatWebSocketProtocol
from roomchat.core import BackendUnavailable, Listener, Manager, RoomchatError, ValidationError, to_json
from roomchat.core.errors import Forbidden, Overloaded, RateLimited, Unauthenticated, Unavailable
from roomchat.core.identity import Identity
from roomchat.core.message import dumps

TRANSPORT = "ws"  # the listeners' label in /metrics
CLOSE_UNSUPPORTED = 1003
CLOSE_INTERNAL = 1011
log = logging.getLogger("roomchat.ws")

_STATUS: list[tuple[type[RoomchatError], int]] = [
    (ValidationError, 422),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (Overloaded, 503),
    (BackendUnavailable, 503),
    (Unavailable, 503),
]


def websocket_routes(path: str, manager: Manager, settings: AdapterSettings) -> list[BaseRoute]:
    """The endpoint at `path`, and a 426 for a plain GET there."""
    return [WebSocketRoute(path, WebSocketEndpoint(manager, settings)), Route(path, _upgrade_required)]


async def _upgrade_required(request: Request) -> Response:
    message = f"connect with a WebSocket (subprotocol {SUBPROTOCOL})"
    return error(426, message, {"upgrade": "websocket", "connection": "upgrade"})


class WebSocketEndpoint:
    """The ASGI app of one WebSocket route."""

    def __init__(self, manager: Manager, settings: AdapterSettings) -> None:
        self._manager = manager
        self._settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            identity = identify(self._manager, scope, self._settings.trust_proxy)
        except Unauthenticated as exc:  # a token was given and is bad: answer as HTTP does
            await _refuse(send, 401, str(exc), [(b"www-authenticate", b'Bearer realm="roomchat"')])
            return
        chosen = SUBPROTOCOL if SUBPROTOCOL in (scope.get("subprotocols") or ()) else None
        await send({"type": "websocket.accept", "subprotocol": chosen})
        protocol = getattr(scope.get(RAW_SEND), "__self__", None)
        if not isinstance(protocol, RoomchatWebSocketProtocol):
            log.error("the WebSocket endpoint needs roomchat's server (serve_asgi) to write its frames")
            await send({"type": "websocket.close", "code": CLOSE_INTERNAL})
            return
        address = client_address(scope, self._settings.trust_proxy)
        connection = _Connection(self._manager, protocol, identity, address)
        connection.user_id = _user_of(scope)
        try:
            await connection.serve(receive, send)
        finally:
            await connection.close()


async def _refuse(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = dumps({"code": status, "message": message})
    headers = [(b"content-type", b"application/json"), *headers]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


class _Subscription:
    __slots__ = ("_queue", "_schedule", "closed", "connection", "context", "listener", "marked")

    def __init__(
        self, connection: _Connection, context: AbstractAsyncContextManager[Listener], listener: Listener
    ) -> None:
        self.connection = connection
        self.context = context
        self.listener = listener
        self._queue = connection.marked
        self._schedule = connection.flusher.add
        self.marked = False  # waiting in the connection's `marked`
        self.closed = False  # ended here; its context is being left

    def mark(self) -> None:
        """The listener's `notify`, on the hot path: once per flush it queues itself on its connection.

        Never awaits, copies or encodes, and reads nothing but its own slots and the
        connection's queue (as lean as the SSE fast path's `mark`: every extra object
        touched here is paid once per delivery). An empty queue means the connection
        is not yet due for a flush; a queue left by a flush that found the socket full
        waits for `_Connection._writable`.
        """
        if not self.marked:
            self.marked = True
            queue = self._queue
            if not queue:
                self._schedule(self.connection)
            queue.append(self)

    async def leave(self) -> None:
        await self.context.__aexit__(None, None, None)


class _Connection:
    """One client's rooms, the answers to its frames, and the writes of its room messages."""

    __slots__ = (
        "_address",
        "_handlers",
        "_identity",
        "_leaving",
        "_manager",
        "_rooms",
        "_transport",
        "flusher",
        "marked",
        "protocol",
        "user_id",
    )

    def __init__(
        self, manager: Manager, protocol: RoomchatWebSocketProtocol, identity: Identity, address: str | None
    ) -> None:
        self._manager = manager
        self.protocol = protocol
        self._transport = protocol.transport
        self._identity = identity
        self._address = address
        self.user_id: str | None = None
        self._rooms: dict[str, _Subscription] = {}
        # Subscriptions with something to write; not empty: a flush is due (or waits for the socket).
        self.marked: list[_Subscription] = []
        self.flusher = flusher()
        self._leaving: set[asyncio.Task[None]] = set()
        protocol.on_writable = self._writable
        self._handlers = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "publish": self._publish,
            "ping": self._ping,
            "auth": self._auth,
        }

    # -- the client's frames, one at a time -----------------------------------

    async def serve(self, receive: Receive, send: Send) -> None:
        while True:
            event = await receive()
            if event["type"] != "websocket.receive":
                return  # websocket.disconnect: the client closed, vanished, or the server stops
            text = event.get("text")
            if text is None:
                reason = "frames must be JSON text"
                await send({"type": "websocket.close", "code": CLOSE_UNSUPPORTED, "reason": reason})
                return
            await self._answer(text)

    async def _answer(self, text: str) -> None:
        frame: dict[str, Any] = {}
        try:
            frame = parse_object(text.encode(), "a frame")
            kind = frame.get("type")
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                known = ", ".join(self._handlers)
                raise BadRequest(400, f"type must be one of {known}; got {json.dumps(kind)}")
            await handler(frame)
        except BadRequest as exc:
            await self._send(error_frame(exc.status, exc.message, _ref(frame), _room_of(frame)))
        except RoomchatError as exc:
            await self._send(_error_of(exc, _ref(frame), _room_of(frame)))

    async def _send(self, frame: bytes) -> None:
        """An answer, written in order; while the socket is full, the client's frames wait too."""
        protocol = self.protocol
        if protocol.paused:
            await protocol.writable.wait()
        protocol.write(frame)

    async def _ping(self, frame: dict[str, Any]) -> None:
        await self._send(_PONG)

    async def _auth(self, frame: dict[str, Any]) -> None:
        token = frame.get("token")
        if not isinstance(token, str) or not token:
            raise BadRequest(422, "token is required and must be a string")
        self._identity = self._manager.identify(token, self._address)
        await self._send(control("authenticated", userId=self._identity.user_id))

    async def _subscribe(self, frame: dict[str, Any]) -> None:
        room_id = _string(frame, "roomId")
        last_id = frame.get("lastId")
        if last_id is not None and not isinstance(last_id, str):
            raise ValidationError("lastId", "lastId must be a string")
        if room_id in self._rooms:
            raise BadRequest(409, f"already subscribed to {room_id}: unsubscribe first")
        if len(self._rooms) >= MAX_ROOMS:
            raise BadRequest(429, f"at most {MAX_ROOMS} rooms per connection")
        context = self._manager.listen(
            room_id,
            last_id or None,
            transport=TRANSPORT,
            identity=self._who(),
            user_id=self.user_id,  # the URL's ?userId=: who this connection is in presence
            presence=frame.get("presence") is True,
        )
        listener = await context.__aenter__()
        subscription = self._rooms[room_id] = _Subscription(self, context, listener)
        # `subscribed` (and `gap`) go out before anything of the room: the listener
        # only marks the connection once they are written.
        answer = control("subscribed", roomId=room_id)
        if listener.gap is not None:
            answer += gap_frame(room_id, listener.gap)
        await self._send(answer)
        listener.notify = subscription.mark
        subscription.mark()

    async def _unsubscribe(self, frame: dict[str, Any]) -> None:
        room_id = _string(frame, "roomId")
        subscription = self._rooms.pop(room_id, None)
        if subscription is not None:
            subscription.closed = True
            subscription.listener.notify = None
            await subscription.leave()
        await self._send(control("unsubscribed", roomId=room_id))

    async def _publish(self, frame: dict[str, Any]) -> None:
        room_id = _string(frame, "roomId")
        text = text_field(frame)
        if not isinstance(text, str):
            raise ValidationError("text", "text is required and must be a string")
        user, key = frame.get("userId"), frame.get("key")
        posted = await self._manager.submit_once(room_id, user, text, key=key, identity=self._who())
        ref, message = dumps(_ref(frame)), posted.message.encode(to_json)
        replayed = b',"replayed":true' if posted.replayed else b""
        await self._send(text_frame(b'{"type":"ack","ref":%s,"message":%s%s}' % (ref, message, replayed)))

    def _who(self) -> Identity:
        """The connection's identity, unless its token has expired since."""
        identity = self._identity
        if identity.expires is not None and identity.expires <= time.time():
            raise Unauthenticated("the token has expired: send a fresh one in an auth frame")
        return identity

    # -- room messages, written beneath ASGI ------------------------------------

    def _writable(self) -> None:
        if self.marked:
            self.flusher.add(self)

    def flush(self) -> None:
        """Everything every marked subscription has pending, in one write."""
        protocol = self.protocol
        if protocol.paused or protocol.close_sent or self._transport.is_closing():
            return  # `marked` stays: `_writable` flushes it, or the connection is going and `close` ends it
        marked = self.marked
        frames: list[bytes] = []
        for subscription in marked:
            subscription.marked = False
            if subscription.closed:
                continue
            listener = subscription.listener
            batch = listener.take()
            if batch:
                frames += [m.encode(ws_frame) for m in batch]
            if listener.ended is not None and listener.done:
                frames.append(end_frame(listener))
                self._end(subscription)
        marked.clear()  # nothing above marks: `take` and `_end` never call a listener's notify
        if frames:  # joining one frame returns it as it is
            self._transport.write(b"".join(frames))

    def hang_up(self) -> None:
        self.protocol.transport.abort()  # the client's reader sees the disconnect and `close` runs

    def _end(self, subscription: _Subscription) -> None:
        """The room ended this subscription (deleted, lagged, expired...): leave it, the rest stays."""
        subscription.closed = True
        listener = subscription.listener
        listener.notify = None
        if self._rooms.get(listener.room_id) is subscription:
            del self._rooms[listener.room_id]
        task = asyncio.ensure_future(subscription.leave())
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def close(self) -> None:
        """The connection is over: free every listener."""
        self.protocol.on_writable = None
        rooms, self._rooms = list(self._rooms.values()), {}
        for subscription in rooms:
            subscription.closed = True
            subscription.listener.notify = None
            await subscription.leave()
        if self._leaving:
            await asyncio.wait(self._leaving)


_PONG = control("pong")


def _string(frame: dict[str, Any], name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str):
        raise ValidationError(name, f"{name} is required and must be a string")
    return value


def _ref(frame: dict[str, Any]) -> object:
    return frame.get("ref")


def _room_of(frame: dict[str, Any]) -> str | None:
    room_id = frame.get("roomId")
    return room_id if isinstance(room_id, str) else None


def _error_of(exc: RoomchatError, ref: object, room_id: str | None) -> bytes:
    """A domain error as the code HTTP would answer."""
    code = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    if isinstance(exc, ValidationError):
        return error_frame(code, exc.message, ref, room_id)
    if isinstance(exc, BackendUnavailable):
        return error_frame(code, f"backend unavailable: {exc}", ref, room_id)
    if isinstance(exc, RateLimited):
        return error_frame(code, str(exc), ref, room_id, retryAfter=exc.retry_after)
    return error_frame(code, str(exc), ref, room_id)


def _user_of(scope: Scope) -> str | None:
    """The connection's `?userId=`, for presence; checked (422 frame) when a room is subscribed."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("userId") or [""]
    return values[0] or None
