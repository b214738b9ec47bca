"""The `grpc` adapter: a grpc.aio server in the runner's event loop.

It serves `message.Room`, `grpc.health.v1.Health` and server reflection. The
runner owns the signals (grpc.aio installs no handlers of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from typing import ClassVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from roomchat.adapters import AdapterSettings, CannotListen, Ready
from roomchat.adapters.grpc.servicer import SERVICE, RoomServicer
from roomchat.core import Manager, validation
from roomchat.descriptors import budget

GRACE = 3.0  # seconds for unary calls in flight to finish once stopping
LAST_GRACE = 0.2  # then for anything else open (health watches, reflection)
HEALTH_INTERVAL = 1.0  # seconds between backend checks for Health/Watch
KEEPALIVE_TIMEOUT_MS = 20_000  # a peer that does not answer a ping for this long is dropped
MIN_CLIENT_PING_MS = 5_000  # clients may ping this often, with or without a call open


class GrpcAdapter:
    default_port: ClassVar[int] = 50051

    def __init__(self, manager: Manager, settings: AdapterSettings) -> None:
        self.manager = manager
        self.settings = settings

    async def serve(self, ready: Ready, stopping: asyncio.Event) -> None:
        server = grpc.aio.server(options=self.options())
        rooms = RoomServicer(self.manager)
        server.add_generic_rpc_handlers((rooms.handler(),))
        checks = _Health(self.manager)
        health_pb2_grpc.add_HealthServicer_to_server(checks, server)
        reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
        port = self._bind(server)
        await server.start()
        watching = asyncio.ensure_future(checks.watch_backend(stopping))
        try:
            scheme = "grpcs" if self.settings.tls else "grpc"
            host = self.settings.host
            ready(f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}")
            await stopping.wait()
        finally:
            # Our handlers refuse new rpcs with UNAVAILABLE (grpcio itself would
            # answer CANCELLED) and let unary calls in flight finish.
            rooms.stop()
            watching.cancel()  # it also ends by itself once stopping is set
            await asyncio.wait({watching}, timeout=HEALTH_INTERVAL)
            await checks.enter_graceful_shutdown()
            await rooms.drained(GRACE)
            await server.stop(LAST_GRACE)

    def options(self) -> list[tuple[str, int | str]]:
        """Channel arguments; `grpc.*` keys in settings.options override them."""
        options: dict[str, int | str] = {
            # A port in use is an error, not a shared port, unless `serve --workers N` shares it.
            "grpc.so_reuseport": int(self.settings.reuse_port),
            "grpc.max_receive_message_length": self.settings.max_body,
            # Server pings on idle connections find clients that vanished.
            "grpc.keepalive_time_ms": int(self.settings.keepalive * 1000),
            "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
            "grpc.http2.ping_timeout_ms": KEEPALIVE_TIMEOUT_MS,  # what recent grpcio applies to them
            "grpc.http2.max_pings_without_data": 0,
            # Accept client keepalive pings (every 30 s and more often), also without a call.
            "grpc.keepalive_permit_without_calls": 1,
            "grpc.http2.min_ping_interval_without_data_ms": MIN_CLIENT_PING_MS,
            # Its share of the open-file limit: past it grpcio closes new connections at once
            # (clients see UNAVAILABLE), so the HTTP adapters keep descriptors to answer with.
            "grpc.max_allowed_incoming_connections": budget().grpc_connections,
        }
        for key, value in self.settings.options.items():
            if key.startswith("grpc."):
                options[key] = _channel_argument(key, value)
        return list(options.items())

    def _bind(self, server: grpc.aio.Server) -> int:
        host, port = self.settings.host, self.settings.port
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reuse = self.settings.reuse_port
        _probe(host, port, reuse)  # grpcio would log its own error to stderr first
        try:
            if self.settings.tls:
                bound = server.add_secure_port(address, self._credentials())
            else:
                bound = server.add_insecure_port(address)
        except RuntimeError:  # grpcio raises this when it cannot bind
            bound = 0
        if not bound:
            raise _bind_error(host, port, reuse)
        return bound

    def _credentials(self) -> grpc.ServerCredentials:
        cert, key = self.settings.tls_files()
        return grpc.ssl_server_credentials([(key, cert)])


def _channel_argument(key: str, value: str) -> int | str:
    """A number where the value is one (gRPC's are C ints, so bounded before `int` reads it)."""
    digits = value.removeprefix("-")
    if not validation.is_whole_number(digits):
        return value
    number = validation.bounded_whole_number(digits, 2**31 - 1)
    if number is None:
        raise ValueError(f"{key} must be at most {2**31 - 1}")
    return -number if value.startswith("-") else number


def _probe(host: str, port: int, reuse_port: bool) -> None:
    """Raise the OS's reason if the address cannot be bound (grpcio does not say why)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpcio binds
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise CannotListen(host, port, exc) from None


def _bind_error(host: str, port: int, reuse_port: bool) -> OSError:
    try:
        _probe(host, port, reuse_port)
    except OSError as exc:
        return exc
    return CannotListen(host, port, OSError(errno.EADDRNOTAVAIL, ""))


class _Health(health.aio.HealthServicer):  # type: ignore[name-defined,misc]
    """SERVING while the backend answers, for the server ("") and message.Room."""

    def __init__(self, manager: Manager) -> None:
        super().__init__()
        self._manager = manager

    async def refresh(self) -> None:
        try:
            async with asyncio.timeout(HEALTH_INTERVAL):  # not wait_for: on 3.11 it can swallow a cancel
                ok = await self._manager.healthy()
        except Exception:
            ok = False
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            await self.set(name, status)

    async def watch_backend(self, stopping: asyncio.Event) -> None:
        """Keep the status fresh for Watch callers until the server stops."""
        while not stopping.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEALTH_INTERVAL):
                    await stopping.wait()

    async def Check(self, request: health_pb2.HealthCheckRequest, context: object) -> object:
        if not self._gracefully_shutting_down:
            await self.refresh()  # answer from the backend's state now, not a second ago
        return await super().Check(request, context)
