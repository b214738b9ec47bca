"""uvicorn's httptools protocol with bounds on reading a request.

uvicorn times only the idle gap between requests and puts no limit on a request's
head, so one client could hold a connection open forever (slowloris) or fill memory
with headers. `GuardedHttpProtocol` adds, per connection:

- a head must arrive whole within HEAD_TIMEOUT of its first byte (or of the
  connection opening), else 408;
- once the head is in, body bytes must keep coming, at most BODY_TIMEOUT apart,
  else 408 (or a plain close if the response has begun). Responses are never timed:
  an event stream stays open as long as it likes;
- a head, or chunked trailers, larger than HEAD_LIMIT is refused with 431 before
  more of it is read (the parser buffers both whole);
- a request the parser rejects gets 400 with the parser's reason;
- a hang-up reaches a response still running ahead of pipelined requests (an event
  stream), not only the newest request as in uvicorn;
- a connection past the process's cap, or its peer's (capacity.py), has its request
  read, within REFUSE_WAIT, and answered 503 (429) without reaching the app;

all with the contract's JSON error body and `connection: close`. When another
response is still owed on the connection (pipelining) nothing is written: it is
closed. The clocks stop while uvicorn is not reading (flow control), since a
client cannot send then; idle time between requests is uvicorn's keep-alive.

It relies on these internals of uvicorn 0.5x's `HttpToolsProtocol`: the parser
callbacks it extends, `parser`, `flow` (made in `connection_made`, handed to each
request's cycle), `client` (the peer's address, set in `connection_made`), `cycle`
(`response_started`, `response_complete`, `disconnected`, `message_event`),
`pipeline`, `server_state.default_headers`, and the helpers its `data_received`
calls (`_unset_keepalive_if_required`, `_should_upgrade`, `handle_websocket_upgrade`,
`_unsupported_upgrade_warning`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from http import HTTPStatus

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from roomchat.adapters.http.capacity import CONNECTIONS

HEAD_TIMEOUT = 10.0
"""Seconds for a request line and headers to arrive whole, from their first byte."""
BODY_TIMEOUT = 10.0
"""Seconds a request body may pause between bytes while the server reads it."""
HEAD_LIMIT = 64 * 1024
"""Bytes of request line and headers, or of trailers, at most (h11 allows 16 KiB)."""
REFUSE_WAIT = 1.0
"""Seconds a connection past the cap (see capacity.py) may take to send its request before its 503."""

log = logging.getLogger("roomchat.http")


class GuardedHttpProtocol(HttpToolsProtocol):
    """Pass as `uvicorn.Config(http=GuardedHttpProtocol)`; the timeouts and limit are read at use."""

    # The guard's state lives in one slotted object: more attributes on uvicorn's
    # protocol would push its instance dict past the size whose keys Python shares
    # between instances, and cost every open stream ~1.3 KiB.
    _g: _State

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn
        super().connection_made(transport)
        self.flow = _Flow(transport, self._reading_resumed)
        self._g = _State()
        self._expect(HEAD_TIMEOUT)
        self._g.peer = self.client[0] if self.client else None
        self._g.refused = CONNECTIONS.admit(self._g.peer)
        if self._g.refused:
            # Past a cap: read the request (so that closing leaves nothing unread, which
            # would reset the connection under the answer), then answer 503 or 429 and close.
            self._expect(REFUSE_WAIT)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._g.released:
            CONNECTIONS.release(self._g.peer)
        if self._g.timer is not None:
            self._g.timer.cancel()
            self._g.timer = None
        running = self._g.running
        if running is not None and running is not self.cycle and not running.response_complete:
            # uvicorn tells only its newest request of a hang-up; a response still running
            # ahead of pipelined requests (an event stream) must hear of it too.
            running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes the transport, and this protocol never hears of its end.
        CONNECTIONS.release(self._g.peer)
        self._g.released = True
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._g.wait is None:  # the first byte of the next request
            self._expect(HEAD_TIMEOUT)
        # What the parser holds until it makes progress (a head, trailers, which it
        # buffers whole) is bounded by feeding it pieces of at most `_left` bytes and
        # charging each piece that made no progress. The bytes after the last progress
        # in a piece go uncharged (the parser does not say where it was), so a head
        # begun inside a piece, as when pipelining, may reach twice HEAD_LIMIT.
        view = memoryview(data)
        while view and not self.transport.is_closing():
            size = self._g.left
            piece, view = view[:size], view[size:]
            progress = self._g.progress
            self._feed(piece)
            if self._g.progress != progress:
                self._g.left = HEAD_LIMIT
            elif not self.transport.is_closing():
                self._g.left = size - len(piece)
                if not self._g.left:
                    part = "trailers or chunk extensions" if self._g.in_body else "headers"
                    self._refuse(431, f"request {part} are too large")

    def _feed(self, piece: memoryview) -> None:
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserCallbackError:  # uvicorn's code, or ours, failed on this request
            log.warning("could not read a request from %s", self.client, exc_info=True)
            self._refuse(400, "malformed HTTP request")
        except httptools.HttpParserError as exc:  # llhttp's reason, e.g. "Invalid method encountered"
            self._refuse(400, f"malformed HTTP request: {exc}")
        except httptools.HttpParserUpgrade:  # as uvicorn's own data_received
            if self._g.refused:
                self._refuse(*self._g.refused)
            elif self._should_upgrade():
                self._stop_clock()  # the connection is a WebSocket's now: no request to time
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        if self._g.wait is None:  # a pipelined request begins inside the data just received
            self._expect(HEAD_TIMEOUT)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._g.progress += 1
        if self._g.refused:  # nothing reaches the app; the body is read and dropped
            self._g.in_body = True
            return
        self._g.in_body = True
        self._expect(BODY_TIMEOUT)
        running = self._g.running
        if running is None or running.response_complete:
            self._g.running = self.cycle  # the response being written while this request is read
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._g.progress += 1
        if self._g.refused:
            return
        self._expect(BODY_TIMEOUT)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._g.progress += 1
        if self._g.refused:
            self._refuse(*self._g.refused)
            return
        self._g.in_body = False
        self._g.wait = None  # idle until the next request: uvicorn's keep-alive timeout applies
        if self._g.timer is not None:  # nothing to time while a response (maybe a long stream) runs
            self._g.timer.cancel()
            self._g.timer = None
        super().on_message_complete()

    def _stop_clock(self) -> None:
        self._g.wait = None
        if self._g.timer is not None:
            self._g.timer.cancel()
            self._g.timer = None

    def _expect(self, seconds: float) -> None:
        """The awaited part of the request must arrive within `seconds` from now.

        One timer per connection, moved only when a deadline comes earlier than it:
        progress just moves `_deadline`, and the timer catches up when it fires.
        """
        self._g.wait = seconds
        self._g.deadline = deadline = self.loop.time() + seconds
        if self._g.timer is None or deadline < self._g.timer.when():
            if self._g.timer is not None:
                self._g.timer.cancel()
            self._g.timer = self.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._g.timer = None
        if self._g.wait is None or self.transport.is_closing():
            return
        if self.flow.read_paused:
            return  # uvicorn is not reading: the clock restarts when it resumes
        if self.loop.time() < self._g.deadline:
            self._g.timer = self.loop.call_at(self._g.deadline, self._check)
            return
        if self._g.refused:
            self._refuse(*self._g.refused)
            return
        part = "body" if self._g.in_body else "headers"
        self._refuse(408, f"request {part} not received in time")

    def _reading_resumed(self) -> None:
        if self._g.wait is not None:
            self._expect(self._g.wait)

    def _refuse(self, status: int, message: str) -> None:
        """Answer with the contract's JSON error, unless another response is owed first; close."""
        log.debug("%s: %d %s", self.client, status, message)
        if self._may_answer():
            body = json.dumps({"code": status, "message": message}, separators=(",", ":")).encode()
            head = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
            head += [b"%s: %s\r\n" % header for header in self.server_state.default_headers]
            head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
            self.transport.write(b"".join([*head, b"connection: close\r\n\r\n", body]))
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app sees http.disconnect and its writes are dropped
            cycle.message_event.set()
        self.transport.close()

    def _may_answer(self) -> bool:
        """Whether a response written now would answer the request being read."""
        if self.pipeline:  # requests are queued behind one still being answered
            return False
        if self.cycle is None:
            return True
        if self._g.in_body:  # reading the body of `cycle`'s own request
            return not self.cycle.response_started
        return self.cycle.response_complete  # reading the head of the request after it


class _State:
    __slots__ = (
        "deadline", "in_body", "left", "peer", "progress", "refused", "released", "running", "timer", "wait",
    )

    def __init__(self) -> None:
        self.left = HEAD_LIMIT  # bytes the parser may still take before it completes a head or yields body
        self.progress = 0  # heads completed, body pieces yielded and requests completed so far
        self.in_body = False  # between a request's head and its end
        self.wait: float | None = None  # seconds the awaited part of the request may take; None: idle
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.running: RequestResponseCycle | None = None  # the earliest response not yet complete
        self.refused: tuple[int, str] | None = None  # past a cap: the answer once its request is in
        self.peer: str | None = None  # the peer's address, as counted by the cap
        self.released = False  # the cap no longer counts it (a WebSocket took the transport)


class _Flow(FlowControl):
    """uvicorn's flow control, telling the protocol when it reads again."""

    def __init__(self, transport: asyncio.Transport, resumed: Callable[[], None]) -> None:
        super().__init__(transport)
        self._resumed = resumed

    def resume_reading(self) -> None:
        if self.read_paused:
            super().resume_reading()
            self._resumed()
