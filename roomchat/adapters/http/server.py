"""Serving an ASGI app on uvicorn inside the runner's event loop.

The runner owns the signals: uvicorn's own handlers are kept out of the way.
Requests are read by `GuardedHttpProtocol`, uvicorn's httptools protocol with
timeouts and a size limit on reading a request (see roomchat.adapters.http.guard).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

from roomchat.adapters import AdapterSettings, CannotListen, Ready
from roomchat.adapters.http.access_log import access_logged
from roomchat.adapters.http.capacity import CONNECTIONS
from roomchat.adapters.http.guard import GuardedHttpProtocol
from roomchat.adapters.http.identity import trusted_networks
from roomchat.adapters.http.sse import with_raw_send
from roomchat.adapters.http.ws_frames import MAX_FRAME
from roomchat.adapters.http.ws_protocol import RoomchatWebSocketProtocol

GRACE = 3.0  # seconds for open requests to finish once stopping


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the runner owns SIGINT and SIGTERM

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket. proto=IPPROTO_TCP makes asyncio set TCP_NODELAY.

    `reuse_port`: several processes (`serve --workers N`) listen on the same
    port and the kernel spreads new connections over them.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise CannotListen(host, port, exc) from None
    return sock


def url_of(sock: socket.socket, tls: bool, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}{'s' if tls else ''}://{shown}:{port}"


async def serve_asgi(
    app: Any, settings: AdapterSettings, ready: Ready, stopping: asyncio.Event
) -> None:
    """Serve `app` until `stopping` is set, then let open responses finish."""
    if settings.tls:
        settings.tls_files()  # a missing file is named before anything binds
    sock = bind(settings.host, settings.port, settings.reuse_port)
    CONNECTIONS.set_from_open_file_limit()  # the limit as raised at start-up
    CONNECTIONS.per_ip = settings.max_connections_per_ip
    CONNECTIONS.exempt = trusted_networks(settings.trust_proxy)
    if settings.access_log:
        app = access_logged(app)  # inside with_raw_send: the fast paths still find uvicorn's own send
    config = uvicorn.Config(
        with_raw_send(app),
        interface="asgi3",
        proxy_headers=False,  # nothing reads the client address; saves a frame per open stream
        http=GuardedHttpProtocol,  # httptools, with bounds on reading a request
        ws=RoomchatWebSocketProtocol,  # sans-I/O, with frames written beneath ASGI: see ws_protocol.py
        ws_max_size=MAX_FRAME,  # a larger client message closes with 1009
        ws_ping_interval=settings.keepalive,  # idle or not, a client that stops answering is closed
        ws_ping_timeout=settings.keepalive,
        ws_per_message_deflate=False,  # frames are shared bytes, built once for every listener
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        timeout_graceful_shutdown=int(GRACE),
        timeout_keep_alive=30,
        limit_concurrency=None,
        backlog=2048,
    )
    server = _Server(config, lambda: ready(url_of(sock, settings.tls)))
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
    finally:
        stop.cancel()
        if not serving.done():
            server.force_exit = True
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await serving
        sock.close()

