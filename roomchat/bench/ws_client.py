"""The WebSocket bench client: one roomchat.v1 connection per listener, subscribed
to every room of the run (`--rooms K`); posts go over REST as for SSE, so the
two compare fan-out alone.

Raw asyncio protocol, as the SSE client: frames are delimited with a few byte
reads per frame and handed to the sink in one piece per read, with no parse.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
import time
from collections.abc import Callable

from roomchat.bench.clients import (
    AbortingStream,
    Publisher,
    SseClient,
    StalledStream,
    Stream,
    Target,
    connect_small_window,
)
from roomchat.bench.tally import LAGGED_WS, Sink

PATH = "/api/ws"
_PING, _CLOSE = 0x9, 0x8


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A client frame: masked, as RFC 6455 requires, with a zero key (the payload stays as is)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    else:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    return head + b"\0\0\0\0" + payload


def _request(target: Target) -> bytes:
    host, port = target.host_port
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: roomchat.v1\r\n{target.auth_header}\r\n"
    ).encode()


def _subscribes(target: Target) -> bytes:
    return b"".join(
        client_frame(json.dumps({"type": "subscribe", "roomId": room}).encode()) for room in target.room_ids
    )


class _WsProtocol(asyncio.Protocol):
    """One connection: the handshake, `subscribed` for every room, then frames to the sink."""

    def __init__(self, target: Target, sink: Sink | None, ended: Callable[[], None]) -> None:
        self.target = target
        self.sink = sink
        self.ended = ended
        self.buf = b""
        self.upgraded = False
        self.waiting = len(target.room_ids)  # `subscribed` frames still to come
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(_request(self.target))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(buf[: buf.find(b"\r\n")].decode("latin-1")))
                return
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(_subscribes(self.target))
            buf = buf[end + 4 :]
        cut = self._frames(buf)
        self.buf = buf[cut:]
        if not cut:
            return
        if self.waiting:
            self.waiting -= buf.count(b'"type":"subscribed"', 0, cut)
            if self.waiting <= 0 and not self.ready.done():
                self.ready.set_result(None)
        if self.sink is not None:
            self.sink.feed(buf[:cut] + b"\n", time.monotonic_ns())

    def _frames(self, buf: bytes) -> int:
        """Where the last complete frame ends; answers pings on the way."""
        pos, n = 0, len(buf)
        while n - pos >= 2:
            size, head = buf[pos + 1] & 0x7F, 2
            if size == 126:
                if n - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 4]), 4
            elif size == 127:
                if n - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 10]), 10
            if n - pos < head + size:
                break
            opcode = buf[pos] & 0x0F
            if opcode == _PING and self.transport is not None:
                self.transport.write(client_frame(buf[pos + head : pos + head + size], 0xA))
            elif opcode == _CLOSE and self.transport is not None:
                self.transport.close()
            pos += head + size
        return pos

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before subscribing"))
        else:
            self.ended()


class _StalledWs:
    """A connection that stops reading once subscribed: the kernel buffers fill, then the server's."""

    def __init__(self, protocol: _WsProtocol) -> None:
        self._protocol = protocol
        self._lagged = asyncio.get_running_loop().create_future()
        protocol.sink = self  # type: ignore[assignment]  # it only needs `feed`
        self._tail = b""

    def feed(self, data: bytes, now: int) -> None:
        seen = self._tail + data
        if LAGGED_WS in seen and not self._lagged.done():
            self._lagged.set_result(True)
        self._tail = seen[-len(LAGGED_WS) :]

    async def drain(self, timeout: float) -> bool:
        p = self._protocol
        assert p.transport is not None
        p.transport.resume_reading()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._lagged), timeout)
        p.transport.abort()
        return self._lagged.done()


class WsClient:
    """WebSocket listeners on the `rest` adapter's /api/ws; posts as the SSE client's."""

    name = "ws"
    server_adapters: tuple[str, ...] = ("rest",)
    uvloop = True

    async def listen(self, target: Target, sink: Sink, ended: Callable[[], None]) -> Stream:
        host, port = target.host_port
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: _WsProtocol(target, sink, ended), host, port)
        await protocol.ready
        return AbortingStream(protocol)

    async def stalled(self, target: Target) -> StalledStream:
        host, port = target.host_port
        protocol = await connect_small_window(host, port, lambda: _WsProtocol(target, None, lambda: None))
        await protocol.ready
        stalled = _StalledWs(protocol)
        assert protocol.transport is not None
        protocol.transport.pause_reading()
        return stalled

    async def publisher(self, target: Target) -> Publisher:
        return await SseClient().publisher(target)

