"""Bench clients: how the bench listens and posts over one transport.

A client is small on purpose: `listen` opens one stream and feeds raw bytes
to a `Sink` from the transport's callback (no task, no parse per event);
`publisher` returns something that posts one text and waits for the answer.
A new transport plugs in by adding a `BenchClient` to `CLIENTS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import quote, urlsplit

from roomchat.bench.tally import LAGGED, Sink


@dataclass(frozen=True)
class Target:
    """Where and how to talk to the server under test."""

    url: str  # http://host:port (or host:port for gRPC)
    room: str
    user: str = "bench"
    post_path: str = "/api/room/{room}"
    stream_path: str = "/api/stream/{room}"
    text_field: str = "text"
    rooms: int = 1  # a WebSocket listener subscribes to this many rooms; posts go round them
    token: str | None = None  # sent as `Authorization: Bearer` (--auth jwt)

    @property
    def auth_header(self) -> str:
        return f"Authorization: Bearer {self.token}\r\n" if self.token else ""

    @property
    def room_ids(self) -> list[str]:
        return [self.room] if self.rooms == 1 else [f"{self.room}-{i}" for i in range(self.rooms)]

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url if "://" in self.url else f"//{self.url}")
        return parts.hostname or "127.0.0.1", parts.port or 80


class Stream(Protocol):
    def close(self) -> None: ...


class Publisher(Protocol):
    async def post(self, text: str) -> None:
        """Post one message; return once the server acknowledged it."""
        ...

    async def close(self) -> None: ...


class BenchClient(Protocol):
    name: str
    server_adapters: tuple[str, ...]  # adapters `roomchat serve` must run for it
    uvloop: bool  # whether its worker processes may run on uvloop

    async def listen(self, target: Target, sink: Sink, ended: Callable[[], None]) -> Stream:
        """Open one live stream; return once the server registered it.

        Feed everything received to `sink.feed(bytes, time.monotonic_ns())`;
        call `ended()` if the stream ends.
        """
        ...

    async def stalled(self, target: Target) -> StalledStream:
        """Open a stream that reads nothing until `StalledStream.drain`."""
        ...

    async def publisher(self, target: Target) -> Publisher: ...


class StalledStream(Protocol):
    async def drain(self, timeout: float) -> bool:
        """Read what was held back; True if the server ended the stream as lagged."""
        ...


STALLED_RCVBUF = 8192  # bytes
_P = TypeVar("_P", bound=asyncio.Protocol)

# -- SSE over raw HTTP/1.1 ---------------------------------------------------------


class _SseProtocol(asyncio.Protocol):
    """Reads one event stream; hands body bytes to the sink as they come."""

    def __init__(self, request: bytes, sink: Sink | None, ended: Callable[[], None]) -> None:
        self.request = request
        self.sink = sink
        self.ended = ended
        self.head = b""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head[: self.head.find(b"\r\n")]
            if b" 200 " not in status + b" ":
                self.ready.set_exception(ConnectionError(status.decode("latin-1")))
                return
            self.ready.set_result(None)
            data, self.head = self.head[end + 4 :], b""
            if not data:
                return
        if self.sink is not None:
            self.sink.feed(data, time.monotonic_ns())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before the answer"))
        else:
            self.ended()


class AbortingStream:
    """A stream closed by aborting its protocol's transport."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        self._protocol = protocol

    def close(self) -> None:
        transport = getattr(self._protocol, "transport", None)
        if transport is not None:
            transport.abort()


async def connect_small_window(host: str, port: int, factory: Callable[[], _P]) -> _P:
    """A connection with a small receive window, as a slow client far away has: the
    server's buffers fill, not ours."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    _, protocol = await loop.create_connection(factory, sock=sock)
    return protocol


class _StalledSse:
    """A stream that stops reading after its head: the kernel buffers fill, then the server's."""

    def __init__(self, protocol: _StalledProtocol) -> None:
        self._protocol = protocol

    async def drain(self, timeout: float) -> bool:
        p = self._protocol
        assert p.transport is not None
        p.transport.resume_reading()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(p.done), timeout)
        p.transport.abort()
        return p.lagged


class _StalledProtocol(_SseProtocol):
    def __init__(self, request: bytes) -> None:
        super().__init__(request, None, lambda: None)
        self.tail = b""
        self.lagged = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        if not self.ready.done():
            super().data_received(data)
            if self.ready.done() and self.transport is not None:
                self.transport.pause_reading()
            return
        seen = self.tail + data
        if LAGGED in seen:
            self.lagged = True
            if not self.done.done():
                self.done.set_result(None)
        self.tail = seen[-len(LAGGED) :]

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.done.done():
            self.done.set_result(None)


class _HttpPublisher:
    """POSTs over one kept-alive HTTP/1.1 connection, one at a time."""

    def __init__(self, target: Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = target.host_port
        self._heads = [
            f"POST {target.post_path.format(room=quote(room, safe=''))} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\n{target.auth_header}".encode()
            for room in target.room_ids
        ]
        self._posted = 0
        self._user = json.dumps(target.user)
        self._field = json.dumps(target.text_field)
        self._reader = reader
        self._writer = writer

    async def post(self, text: str) -> None:
        body = f'{{"userId":{self._user},{self._field}:{json.dumps(text)}}}'.encode()
        head = self._heads[self._posted % len(self._heads)]  # round the rooms, one post each
        self._posted += 1
        self._writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        answer = await self._reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 2"):
            status = head[: head.find(b"\r\n")].decode("latin-1")
            raise ConnectionError(f"POST answered {status}: {answer[:200].decode('utf-8', 'replace')}")

    async def close(self) -> None:
        self._writer.close()


class SseClient:
    """Server-sent events on `stream_path`, posts on `post_path` (roomchat's REST or any peer)."""

    name = "sse"
    server_adapters: tuple[str, ...] = ("rest",)
    uvloop = True

    def _request(self, target: Target) -> bytes:
        host, port = target.host_port
        path = target.stream_path.format(room=quote(target.room, safe=""))
        return (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"{target.auth_header}\r\n"
        ).encode()

    async def listen(self, target: Target, sink: Sink, ended: Callable[[], None]) -> Stream:
        host, port = target.host_port
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: _SseProtocol(self._request(target), sink, ended), host, port
        )
        await protocol.ready
        return AbortingStream(protocol)

    async def stalled(self, target: Target) -> StalledStream:
        host, port = target.host_port
        protocol = await connect_small_window(host, port, lambda: _StalledProtocol(self._request(target)))
        await protocol.ready
        return _StalledSse(protocol)

    async def publisher(self, target: Target) -> Publisher:
        host, port = target.host_port
        reader, writer = await asyncio.open_connection(host, port)
        return _HttpPublisher(target, reader, writer)


def _sse() -> BenchClient:
    return SseClient()


def _grpc() -> BenchClient:
    # Imported when asked for: it needs the gRPC adapter's generated code.
    module = importlib.import_module("roomchat.bench.grpc_client")
    client: BenchClient = module.GrpcClient()
    return client


def _ws() -> BenchClient:
    module = importlib.import_module("roomchat.bench.ws_client")
    client: BenchClient = module.WsClient()
    return client


CLIENTS: dict[str, Callable[[], BenchClient]] = {"sse": _sse, "grpc": _grpc, "ws": _ws}
