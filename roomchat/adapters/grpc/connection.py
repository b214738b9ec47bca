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
- GOAWAY to every connection when the server has stopped.

Written against grpclib 0.4 (`pyproject.toml` pins it below 0.5): `connection_made`
and `data_received` follow grpclib's own, with the additions above.
"""

from __future__ import annotations

import time
from asyncio import BaseTransport, Transport
from dataclasses import dataclass
from typing import cast

from grpclib.config import Configuration
from grpclib.protocol import Connection, EventsProcessor, H2Protocol, _set_nodelay
from grpclib.server import Handler
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import PingReceived, StreamReset
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

from roomchat.adapters.gauges import OPEN_CONNECTIONS


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
    path of `roomchat.adapters.grpc.writer` clears `ping_strikes` itself.
    """

    ping_strikes = 0
    last_ping_received: float | None = None
    resets = 0  # streams the client cancelled since `resets_since`
    resets_since = 0.0

    def headers_send_process(self) -> None:
        super().headers_send_process()
        self.ping_strikes = 0

    def data_send_process(self) -> None:
        super().data_send_process()
        self.ping_strikes = 0


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

    def connection_made(self, transport: BaseTransport) -> None:
        self.transport = cast(Transport, transport)
        limits = self._connections.limits
        if len(self._connections.open) >= limits.connections:
            self._refused = True  # no handshake: the client sees the connection close (UNAVAILABLE)
            self.transport.abort()
            return
        self._connections.open.add(self)
        OPEN_CONNECTIONS.opened("grpc")
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
        if self._refused:
            return
        try:
            events = self.connection.feed(data)
        except ProtocolError:
            self.processor.close("Protocol error")
            return
        for event in events:
            if isinstance(event, PingReceived) and self._too_many_pings():
                return
            if isinstance(event, StreamReset) and event.remote_reset and self._too_many_resets():
                return
        self.connection.flush()
        for event in events:
            self.processor.process(event)
        self.connection.flush()

    def _too_many_pings(self) -> bool:
        connection = self.connection
        now = time.monotonic()
        last, connection.last_ping_received = connection.last_ping_received, now
        pings = self._connections.limits.pings
        if last is not None and now - last < pings.min_interval:
            connection.ping_strikes += 1
            if connection.ping_strikes > pings.max_strikes:
                connection._connection.data_to_send()  # drop the ACK h2 queued for this ping
                self.go_away(ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_pings")
                self.transport.close()
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
        self.go_away(ErrorCodes.ENHANCE_YOUR_CALM, b"too_many_resets")
        self.transport.close()
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
        OPEN_CONNECTIONS.closed("grpc")
        super().connection_lost(exc)
