"""One HTTP/2 connection of the gRPC server: grpclib's protocol with what grpcio gave us.

grpclib (pure Python on h2) serves the rpcs; this subclass adds what a public
server needs and grpclib does not do:

- a cap on open connections (each holds a descriptor): past it a new one is
  closed at once, so the client sees UNAVAILABLE instead of waiting;
- its own limit of streams per connection (h2 would announce 100);
- client ping policing as grpc core does it: a ping sooner than the minimum
  interval after the previous one is a strike unless the server sent data or
  headers in between, and past `max_ping_strikes` the connection gets GOAWAY
  ENHANCE_YOUR_CALM "too_many_pings" in place of the ping's ACK;
- a bound on streams the client cancels (RST_STREAM): past `max_resets` in a
  second the connection gets GOAWAY ENHANCE_YOUR_CALM "too_many_resets" and
  is closed. Each stream costs a task, an identity and a subscription before
  its reset arrives, so without it one connection opening and cancelling
  streams as fast as it can (HTTP/2 "rapid reset") stalls the whole server;
- budgets of frames that do no work, and a bound on what one connection
  decodes in one turn of the event loop (`roomchat.adapters.grpc.frames`);
  past a budget, GOAWAY ENHANCE_YOUR_CALM with the budget's reason;
- the release of a stream cancelled before its task ran (`ReleasingHandler`);
- GOAWAY to every connection when the server has stopped.

Written against grpclib 0.4 (`pyproject.toml` pins it below 0.5): `connection_made`
and `data_received` follow grpclib's own, with the additions above. Private names
used: grpclib's `_set_nodelay`, `Connection._connection` (the H2Connection) and
`Handler._tasks`. frames.py reads h2's `H2Connection.streams`,
`highest_inbound_stream_id` and `max_inbound_frame_size` (attributes, not methods).
"""

from __future__ import annotations

import asyncio
import time
from asyncio import BaseTransport, Transport
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from grpclib.config import Configuration
from grpclib.protocol import Connection, EventsProcessor, H2Protocol, Stream, _set_nodelay
from grpclib.server import Handler
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import PingReceived, StreamReset, UnknownFrameReceived
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

from roomchat.adapters.grpc.frames import FRAME_TOO_LARGE, FrameMeter


@dataclass(frozen=True)
class Limits:
    """What one server allows its clients."""

    connections: int  # open at once
    streams: int  # rpcs in flight on one connection (HTTP/2 MAX_CONCURRENT_STREAMS)
    resets: int  # streams a client may cancel in one second
    pings: PingPolicy


@dataclass(frozen=True)
class PingPolicy:
    """How often a client may ping (grpc core's `min_recv_ping_interval_without_data`)."""

    min_interval: float  # seconds
    max_strikes: int


class PolicedConnection(Connection):
    """grpclib's connection state, with the client's ping strikes.

    Anything the server sends on a stream (headers, data) clears them; the fast
    path of `roomchat.adapters.grpc.writer` calls `sent_data` itself.
    """

    ping_strikes = 0
    data_frames = 0  # DATA frames sent: each allows the client WINDOW_UPDATEs (frames.py)
    last_ping_received: float | None = None
    resets = 0  # streams the client cancelled since `resets_since`
    resets_since = 0.0

    def headers_send_process(self) -> None:
        super().headers_send_process()
        self.ping_strikes = 0

    def data_send_process(self) -> None:
        super().data_send_process()
        self.sent_data()

    def sent_data(self) -> None:
        """A DATA frame went out (through grpclib, or the fast path of writer.py)."""
        self.ping_strikes = 0
        self.data_frames += 1


class Connections:
    """The server's open connections, bounded, for the protocol factory and the stop."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open: set[ServerProtocol] = set()

    def close(self) -> None:
        """GOAWAY, then close, every connection (the server has stopped: nothing is in flight).

        Not earlier: once h2 has sent GOAWAY it sends nothing more, trailers included.
        """
        for protocol in list(self.open):
            protocol.go_away(ErrorCodes.NO_ERROR)
            protocol.transport.close()


class ReleasingHandler(Handler):
    """grpclib's handler, releasing every stream, also one cancelled before its task ran.

    grpclib releases a stream (forgets it, and acknowledges the flow-controlled bytes
    its request left unread) in its request task's `finally`. A client that sends
    HEADERS, DATA and RST_STREAM in one read gets that task cancelled before it starts,
    so the `finally` never runs: each such stream leaked its DATA's share of the
    connection's receive window until the connection carried no data at all (grpclib
    issue #217), and its entry in the connection's streams. The task's done callback
    releases what the task did not.

    A request without `:method` or `:path` is refused with RST_STREAM before grpclib sees it.
    """

    def accept(
        self, stream: Stream, headers: list[tuple[str, str]], release_stream: Callable[[], Any]
    ) -> None:
        if not _is_request(headers):
            # grpclib would log a traceback for it (a line of log per frame a client sends).
            stream.reset_nowait(ErrorCodes.PROTOCOL_ERROR)
            release_stream()
            return
        released = False

        def release_once() -> None:
            nonlocal released
            if not released:
                released = True
                release_stream()

        super().accept(stream, headers, release_once)
        self._tasks[stream].add_done_callback(lambda _: release_once())


def _is_request(headers: list[tuple[str, str]]) -> bool:
    """Whether the header block has what grpclib reads without checking (h2 validates none)."""
    names = [name for name, _ in headers if name[:1] == ":"]
    return ":method" in names and ":path" in names


class ServerProtocol(H2Protocol):
    """A connection that counts against the server's limits and polices pings."""

    connection: PolicedConnection
    transport: Transport

    def __init__(
        self, handler: Handler, config: Configuration, h2_config: H2Configuration, connections: Connections
    ) -> None:
        super().__init__(handler, config, h2_config)
        self._connections = connections
        self._refused = False
        self._gone = False  # past a budget, or a protocol error: what arrives is not decoded
        self._meter = FrameMeter()
        self._tail = b""  # the beginning of a frame, waiting for the next read
        self._left = b""  # a read whose rest (from `_left_from`) waits for the next turn, reading paused
        self._left_from = 0

    def connection_made(self, transport: BaseTransport) -> None:
        self.transport = cast(Transport, transport)
        limits = self._connections.limits
        if len(self._connections.open) >= limits.connections:
            self._refused = True  # no handshake: the client sees the connection close (UNAVAILABLE)
            self.transport.abort()
            return
        self._connections.open.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _set_nodelay(sock)
        h2_conn = H2Connection(config=self.h2_config)
        h2_conn.local_settings = Settings(  # as h2 sets them, with our stream limit for its 100
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: limits.streams,
                SettingCodes.MAX_HEADER_LIST_SIZE: h2_conn.DEFAULT_MAX_HEADER_LIST_SIZE,
            },
        )
        h2_conn.initiate_connection()
        initial = h2_conn.local_settings.initial_window_size
        if self.config.http2_connection_window_size != initial:
            h2_conn.increment_flow_control_window(self.config.http2_connection_window_size - initial)
        if self.config.http2_stream_window_size != initial:
            h2_conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: self.config.http2_stream_window_size})
        self.connection = PolicedConnection(h2_conn, self.transport, config=self.config)
        self.connection.flush()
        self.connection.initialize()
        self.processor = EventsProcessor(self.handler, self.connection)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._gone:
            return
        if self._left:  # a transport that reads on while paused (TLS may): after what waits
            self._left, self._left_from = self._left[self._left_from :] + data, 0
            return
        if self._tail:  # a frame begun in the last read
            data, self._tail = self._tail + data, b""
        self._decode(data, 0)

    def _decode(self, data: bytes, start: int) -> None:
        """Decodes this turn's share of `data` from `start` (frames.FrameMeter); pauses reading
        until the next turn if whole frames are left, and keeps a frame's beginning."""
        h2 = self.connection._connection
        end, more, reason = self._meter.cut(data, start, h2, self.connection.data_frames)
        if end > start:
            self._feed(data if start == 0 and end == len(data) else memoryview(data)[start:end])
        if reason is not None:
            code = ErrorCodes.FRAME_SIZE_ERROR if reason == FRAME_TOO_LARGE else ErrorCodes.ENHANCE_YOUR_CALM
            self._hang_up(code, reason)
        elif self._gone or end == len(data):
            return
        elif more:
            self._left, self._left_from = data, end  # no copy: a read may hold thousands of turns
            self.transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._next_turn)
        else:
            self._tail = data[end:]

    def _next_turn(self) -> None:
        data, start, self._left = self._left, self._left_from, b""
        if self._gone or self.transport.is_closing():
            return
        self._decode(data, start)
        if not self._left and not self._gone:
            self.transport.resume_reading()

    def _feed(self, data: bytes | memoryview) -> None:
        try:
            events = self.connection.feed(cast(bytes, data))  # h2 takes any buffer
        except ProtocolError:
            self.connection.flush()  # h2's GOAWAY, so the client learns why
            self._gone = True
            self.processor.close("Protocol error")
            return
        for event in events:
            if isinstance(event, PingReceived) and self._too_many_pings():
                return
            if isinstance(event, StreamReset) and event.remote_reset and self._too_many_resets():
                return
        self.connection.flush()
        for event in events:
            if type(event) is not UnknownFrameReceived:  # grpclib raises on it; HTTP/2 ignores it
                self.processor.process(event)
        self.connection.flush()

    def _hang_up(self, code: ErrorCodes, reason: bytes) -> None:
        """GOAWAY with `reason`, then close; nothing more the client sends is decoded."""
        self._gone = True
        self._tail = self._left = b""
        self.go_away(code, reason)
        self.transport.close()

    def _too_many_pings(self) -> bool:
        connection = self.connection
        now = time.monotonic()
        last, connection.last_ping_received = connection.last_ping_received, now
        pings = self._connections.limits.pings
        if last is not None and now - last < pings.min_interval:
            connection.ping_strikes += 1
            if connection.ping_strikes > pings.max_strikes:
                connection._connection.data_to_send()  # drop the ACK h2 queued for this ping
                self._hang_up(ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_pings")
                return True
        return False

    def _too_many_resets(self) -> bool:
        connection = self.connection
        now = time.monotonic()
        if now - connection.resets_since >= 1.0:
            connection.resets, connection.resets_since = 0, now
        connection.resets += 1
        if connection.resets <= self._connections.limits.resets:
            return False
        self._hang_up(ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_resets")
        return True

    def go_away(self, code: ErrorCodes, debug: bytes | None = None) -> None:
        if self.transport.is_closing():
            return
        self.connection._connection.close_connection(error_code=code, additional_data=debug)
        self.connection.flush()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return
        self._connections.open.discard(self)
        super().connection_lost(exc)
