"""The `grpc` adapter: a grpclib server in the runner's event loop.

It serves `message.Room`, `grpc.health.v1.Health` and server reflection
(v1alpha). grpclib is pure Python on h2, so it runs in the loop with the rest
of roomchat; grpc.aio's hop through grpcio's poller thread cost five times more
per streamed message (docs/performance.md, *The gRPC floor*). The runner owns
the signals.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import ClassVar

from grpclib.config import Configuration
from grpclib.server import Server

from roomchat.adapters import AdapterSettings, CannotListen, Ready
from roomchat.adapters.grpc.codec import Codec
from roomchat.adapters.grpc.connection import (
    Connections,
    Limits,
    PingPolicy,
    ReleasingHandler,
    ServerProtocol,
)
from roomchat.adapters.grpc.servicer import SERVICE, RoomServicer
from roomchat.adapters.grpc.standard import (
    HEALTH_INTERVAL,
    HEALTH_SERVICE,
    REFLECTION_SERVICE,
    Health,
    Reflection,
)
from roomchat.core import Manager, validation
from roomchat.descriptors import budget

GRACE = 3.0  # seconds for unary calls in flight to finish once stopping
LAST_GRACE = 0.2  # then for anything else open (health watches, reflection)
BACKLOG = 1024

# The adapter's settings in grpcio's channel-argument names (what embedding code
# gives in AdapterSettings.options); the defaults are set in `options`.
KEEPALIVE_TIME = "grpc.keepalive_time_ms"  # server pings on every connection this often...
KEEPALIVE_TIMEOUT = "grpc.keepalive_timeout_ms"  # ...and drops a peer that does not answer for this long
PERMIT_WITHOUT_CALLS = "grpc.keepalive_permit_without_calls"  # ping connections with no call open too
MIN_CLIENT_PING = "grpc.http2.min_ping_interval_without_data_ms"  # clients may ping this often
MAX_PING_STRIKES = "grpc.http2.max_ping_strikes"  # pings sooner than that, past this many: GOAWAY
MAX_REQUEST = "grpc.max_receive_message_length"
MAX_CONNECTIONS = "grpc.max_allowed_incoming_connections"
MAX_STREAMS = "grpc.max_concurrent_streams"  # rpcs in flight on one connection
MAX_RESETS = 100  # streams a client may cancel per second on one connection (see connection.py)


class GrpcAdapter:
    default_port: ClassVar[int] = 50051

    def __init__(self, manager: Manager, settings: AdapterSettings) -> None:
        self.manager = manager
        self.settings = settings

    async def serve(self, ready: Ready, stopping: asyncio.Event) -> None:
        options = dict(self.options())
        max_request = options[MAX_REQUEST]
        rooms = RoomServicer(self.manager, max_request)
        checks = Health(self.manager, max_request)
        reflection = Reflection([SERVICE, HEALTH_SERVICE, REFLECTION_SERVICE], max_request)
        connections = Connections(
            Limits(
                connections=options[MAX_CONNECTIONS],
                streams=options[MAX_STREAMS],
                resets=MAX_RESETS,
                pings=PingPolicy(options[MIN_CLIENT_PING] / 1000, options[MAX_PING_STRIKES]),
            )
        )
        keepalive = options[KEEPALIVE_TIME] / 1000
        config = Configuration(
            _keepalive_time=keepalive,
            _keepalive_timeout=options[KEEPALIVE_TIMEOUT] / 1000,
            _keepalive_permit_without_calls=bool(options[PERMIT_WITHOUT_CALLS]),
            _http2_max_pings_without_data=0,  # keep pinging an idle connection
            _http2_min_sent_ping_interval_without_data=keepalive,
        )
        server = _Server([rooms, checks, reflection], config, connections)
        listening = self._bind()
        await server.start(sock=listening, ssl=self._tls(), backlog=BACKLOG)
        watching = asyncio.ensure_future(checks.watch_backend(stopping))
        try:
            scheme = "grpcs" if self.settings.tls else "grpc"
            host, port = self.settings.host, listening.getsockname()[1]
            ready(f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}")
            await stopping.wait()
        finally:
            # Our handlers refuse new rpcs with UNAVAILABLE, end the streams with it,
            # and let unary calls in flight finish.
            rooms.stop()
            watching.cancel()  # it also ends by itself once stopping is set
            await asyncio.wait({watching}, timeout=HEALTH_INTERVAL)
            await checks.enter_graceful_shutdown()
            await rooms.drained(GRACE)
            server.close()  # stops listening, cancels what is left (health watches, reflection)
            await asyncio.wait({asyncio.ensure_future(server.wait_closed())}, timeout=LAST_GRACE)
            connections.close()

    def options(self) -> list[tuple[str, int]]:
        """The settings by grpcio's names; `grpc.*` keys in settings.options override them."""
        options: dict[str, int] = {
            KEEPALIVE_TIME: int(self.settings.keepalive * 1000),
            KEEPALIVE_TIMEOUT: 20_000,
            PERMIT_WITHOUT_CALLS: 1,
            # Accept client keepalive pings every 5 s and more seldom, also without a call
            # (the Go clients ping every 30 s); a third too soon gets GOAWAY, as grpcio does.
            MIN_CLIENT_PING: 5_000,
            MAX_PING_STRIKES: 2,
            MAX_REQUEST: self.settings.max_body,
            # Its share of the open-file limit: past it a new connection is closed at once
            # (clients see UNAVAILABLE), so the HTTP adapters keep descriptors to answer with.
            MAX_CONNECTIONS: budget().grpc_connections,
            # A client may hold a stream for each of many rooms on one connection
            # (--max-streams and --max-streams-per-ip bound them all).
            MAX_STREAMS: 1_000,
        }
        for key, value in self.settings.options.items():
            if key.startswith("grpc."):
                if key not in options:
                    raise ValueError(
                        f"{key} is not a gRPC option roomchat reads; it reads {', '.join(options)}"
                    )
                options[key] = _channel_argument(key, value)
        return list(options.items())

    def _bind(self) -> socket.socket:
        """The listening socket: a port in use is an error, unless `serve --workers N` shares it."""
        host, port = self.settings.host, self.settings.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.settings.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise CannotListen(host, port, exc) from None
        return sock

    def _tls(self) -> ssl.SSLContext | None:
        if not self.settings.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["h2"])
        self.settings.tls_files()  # a file that cannot be read is one clear error
        assert self.settings.tls_cert is not None and self.settings.tls_key is not None
        context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        return context


class _Server(Server):
    """grpclib's server, with connections made by `ServerProtocol`."""

    def __init__(self, services: list[object], config: Configuration, connections: Connections) -> None:
        super().__init__(services, codec=Codec(), config=config)  # type: ignore[arg-type]
        self._connections = connections

    def _protocol_factory(self) -> ServerProtocol:
        self.__gc_step__()
        handler = ReleasingHandler(self._mapping, self._codec, self._status_details_codec, self.__dispatch__)
        self._handlers.add(handler)
        return ServerProtocol(handler, self._config, self._h2_config, self._connections)


def _channel_argument(key: str, value: str) -> int:
    """A whole number, bounded before `int` reads it (gRPC's are C ints)."""
    number = validation.bounded_whole_number(value, 2**31 - 1) if validation.is_whole_number(value) else None
    if number is None:
        raise ValueError(f"{key} must be a whole number from 0 to {2**31 - 1}")
    return number
