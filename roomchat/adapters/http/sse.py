"""Server-sent event streams, shared by the `rest` and `html` adapters.

Raw ASGI: each message's frame is encoded once (cached on the message) and a
writer sends everything pending in one `send`.

Under uvicorn's httptools server (whose own `send` `serve_asgi` leaves in the
scope) a stream also takes the fast path: a listener's pushes mark it, and
once per loop turn one callback writes every marked listener's pending
frames straight to its socket, with no task woken per listener. The stream's
own task is still woken for keepalives, the end, and whenever the socket is
full (then it waits on uvicorn's flow control as usual). Since it writes
beneath the ASGI app, no middleware that rewrites response bodies (gzip) may
wrap an app that serves event streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from roomchat.adapters.http.flushing import PIECE, MarkedOnce, flusher, one_per_loop
from roomchat.core import EndReason, Listener, Manager, Message, to_json
from roomchat.core.identity import Identity
from roomchat.core.message import dumps
from roomchat.core.presence import PresenceNote

Scope = dict[str, Any]
Receive = Any
Send = Any

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
KEEPALIVE = b": keepalive\n\n"
RAW_SEND = "roomchat.send"  # scope key: the server's own `send`, set by roomchat.adapters.http.server


def sse_frame(message: Message) -> bytes:
    """The codec of the SSE wire format: one `message` event (or `presence`, for a note)."""
    if isinstance(message, PresenceNote):  # no `id:` line: it must not move the client's Last-Event-ID
        return event("presence", message.to_data())
    return b"id: %s\nevent: message\ndata: %s\n\n" % (message.id.encode(), message.encode(to_json))


def sse_chunk(message: Message) -> bytes:
    """The codec of one `message` event as an HTTP/1.1 chunk, for the fast path."""
    frame = sse_frame(message)  # only the chunk is cached: the fast path never needs the bare frame
    return b"%x\r\n%s\r\n" % (len(frame), frame)


def event(name: str, data: object) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), dumps(data))


def _end_frame(listener: Listener) -> bytes:
    if listener.ended is EndReason.DELETED:
        return event("deleted", {"roomId": listener.room_id})
    if listener.ended is EndReason.LAGGED:
        return event("lagged", {"lastEventId": listener.last_id})
    if listener.ended is EndReason.EXPIRED:
        return event("expired", {"lastEventId": listener.last_id})
    return b""


def resume_id(scope: Mapping[str, Any], query: Mapping[str, str]) -> str | None:
    """The id to resume after: `Last-Event-ID` header, else `lastEventId` query."""
    for name, value in scope["headers"]:
        header: str = value.decode("latin-1").strip() if name == b"last-event-id" else ""
        if header:
            return header
    return query.get("lastEventId") or None


class EventStream:
    """An ASGI response that streams one room to one client."""

    def __init__(
        self,
        manager: Manager,
        room_id: str,
        after: str | None,
        transport: str,
        keepalive: float,
        identity: Identity | None = None,
        *,
        user_id: str | None = None,
        presence: bool = False,
    ) -> None:
        self._manager = manager
        self._identity = identity
        self._user_id = user_id
        self._presence = presence
        self._room_id = room_id
        self._after = after
        self._transport = transport
        self._keepalive = keepalive

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD":  # the headers a GET would get, and no stream
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        async with self._manager.listen(
            self._room_id,
            self._after,
            transport=self._transport,
            identity=self._identity,
            user_id=self._user_id,
            presence=self._presence,
        ) as listener:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            direct = _Direct.attach(listener, scope, self._keepalive)
            # The fast path learns of a hang-up from uvicorn itself and gets its keepalives
            # from a shared clock; otherwise a task watches and `wait` times out.
            watcher = None if direct else asyncio.ensure_future(_until_disconnect(receive, listener))
            try:
                await _pump(listener, send, None if direct else self._keepalive)
            finally:
                listener.notify = None
                if watcher is not None:
                    watcher.cancel()
                if direct is not None:
                    direct.detach()


async def _pump(listener: Listener, send: Send, keepalive: float | None) -> None:
    first = b": connected\n\n"
    if listener.gap is not None:
        gap = listener.gap
        first = event("gap", {"lastEventId": gap.last_event_id, "oldestId": gap.oldest_id})
    await send({"type": "http.response.body", "body": first, "more_body": True})
    while True:
        if not await listener.wait(keepalive):
            await send({"type": "http.response.body", "body": KEEPALIVE, "more_body": True})
            continue
        frames: list[bytes] = []
        if listener.take_frames(frames, sse_frame, PIECE):
            # A piece at a time: `send` waits while the socket is full, so what is held
            # is one piece, and between pieces other clients get the loop.
            await send({"type": "http.response.body", "body": b"".join(frames), "more_body": True})
            if listener.pending:
                await asyncio.sleep(0)
        if listener.done:
            break
    if listener.ended is not EndReason.CLOSED:
        await send({"type": "http.response.body", "body": _end_frame(listener)})


async def _until_disconnect(receive: Receive, listener: Listener) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    listener.end(EndReason.CLOSED)


class _Direct(MarkedOnce):
    """The fast path of one stream: its listener's pending frames written straight to the socket."""

    __slots__ = ("_clock", "_cycle", "_listener", "_transport", "wrote")

    def __init__(self, listener: Listener, cycle: Any, clock: _Keepalive) -> None:
        self._listener = listener
        self._cycle = cycle
        self._transport = cycle.transport
        self._marked = False
        self._clock = clock
        self._flusher = flusher()
        self.wrote = False  # since the keepalive clock last looked

    @classmethod
    def attach(cls, listener: Listener, scope: Scope, keepalive: float) -> _Direct | None:
        """Set up the fast path if the server is uvicorn's httptools one, streaming chunked."""
        cycle = getattr(scope.get(RAW_SEND), "__self__", None)
        if cycle is None or getattr(cycle, "chunked_encoding", None) is not True:
            return None
        if getattr(cycle, "transport", None) is None or getattr(cycle, "flow", None) is None:
            return None
        event = getattr(cycle, "message_event", None)
        if type(event) is not asyncio.Event:
            return None
        direct = cls(listener, cycle, _keepalive_clock(keepalive))
        direct._clock.add(direct)
        listener.notify = direct.mark
        cycle.message_event = _Hangup(cycle, listener)
        if cycle.disconnected:
            listener.end(EndReason.CLOSED)
        return direct

    def detach(self) -> None:
        self._clock.discard(self)

    def flush(self) -> None:
        self._marked = False
        listener = self._listener
        cycle = self._cycle
        # Only while the stream's task is parked in `wait`, so writes never interleave
        # with its own; a full socket is left to it and uvicorn's flow control.
        if self._transport.is_closing():
            self.hang_up()  # see `keepalive`
            return
        if cycle.flow.write_paused or cycle.disconnected or not listener.waiting:
            listener.wake()
            return
        frames: list[bytes] = []
        if listener.take_frames(frames, sse_chunk, PIECE):  # joining one chunk returns it as it is
            self._transport.write(b"".join(frames))
            if listener.pending:  # the next piece next turn, if the socket has room by then
                self.mark()
        self.wrote = True

    def hang_up(self) -> None:
        self._cycle.disconnected = True  # so uvicorn writes nothing more for this response
        self._listener.end(EndReason.CLOSED)

    def keepalive(self) -> None:
        if self._transport.is_closing():
            # A hang-up nobody told the stream of (uvicorn tells only its newest request;
            # GuardedHttpProtocol tells a stream ahead of pipelined requests too).
            self.hang_up()
            return
        if self.wrote:
            self.wrote = False
            return
        cycle = self._cycle
        if self._listener.waiting and not cycle.flow.write_paused and not cycle.disconnected:
            self._transport.write(_KEEPALIVE_CHUNK)
            self.wrote = True  # the next tick, half an interval on, leaves it be


class _Hangup:
    """Stands in for uvicorn's per-request `asyncio.Event`, which it sets when the client goes away.

    Nothing waits on it once the stream runs, so it is a few slots, not an Event.
    """

    __slots__ = ("_cycle", "_event", "_listener")

    def __init__(self, cycle: Any, listener: Listener) -> None:
        self._cycle = cycle
        self._listener = listener
        self._event: asyncio.Event | None = None

    def set(self) -> None:
        if self._cycle.disconnected:
            self._listener.end(EndReason.CLOSED)
        self._events().set()

    def clear(self) -> None:
        self._events().clear()

    def is_set(self) -> bool:
        return self._event is not None and self._event.is_set()

    async def wait(self) -> bool:
        return await self._events().wait()

    def _events(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event


class _Keepalive:
    """One clock for every fast-path stream with the same interval, instead of a timer each.

    It ticks every half interval; a stream that wrote nothing since the last tick
    gets a keepalive, so no stream stays silent longer than the interval.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self._streams: set[_Direct] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, direct: _Direct) -> None:
        self._streams.add(direct)
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval / 2, self._tick)

    def discard(self, direct: _Direct) -> None:
        self._streams.discard(direct)

    def _tick(self) -> None:
        self._timer = None
        if not self._streams:
            return
        self._timer = self.loop.call_later(self.interval / 2, self._tick)
        for direct in list(self._streams):
            direct.keepalive()


_KEEPALIVE_CHUNK = b"%x\r\n%s\r\n" % (len(KEEPALIVE), KEEPALIVE)


def _keepalive_clock(interval: float) -> _Keepalive:
    return one_per_loop(("keepalive", interval), lambda loop: _Keepalive(loop, interval))


def with_raw_send(app: Callable[[Scope, Receive, Send], Any]) -> Callable[[Scope, Receive, Send], Any]:
    """Wrap an ASGI app so event streams can find the server's own `send` (the fast path).

    A plain function returning the app's awaitable: no frame of its own stays alive per
    stream (serve with uvicorn's `interface="asgi3"`).
    """

    def wrapped(scope: Scope, receive: Receive, send: Send) -> Any:
        scope[RAW_SEND] = send
        return app(scope, receive, send)

    return wrapped
