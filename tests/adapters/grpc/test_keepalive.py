"""Server keepalive pings drop a client that vanished without closing its connection."""

from __future__ import annotations

import asyncio
import socket
import struct

from roomchat.adapters.grpc.generated import message_pb2 as pb
from tests.adapters.grpc.client import room_stub, target
from tests.support import Running, serve

FAST_KEEPALIVE = {  # the adapter's settings, with the 20 s ping timeout made short
    "keepalive": 0.2,
    "options": {"grpc.keepalive_timeout_ms": "500", "grpc.http2.ping_timeout_ms": "500"},
}


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: str, value: str) -> bytes:  # HPACK: literal without indexing, new name
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


def vanished_client(url: str, room: str) -> socket.socket:
    """Opens StreamRoom by hand, answers pings until the stream is up, then goes silent:
    a client whose machine vanished without closing the connection."""
    host, port = target(url).split(":")
    sock = socket.create_connection((host, int(port)))
    headers = b"".join(
        _literal(n, v)
        for n, v in [
            (":method", "POST"), (":scheme", "http"), (":path", "/message.Room/StreamRoom"),
            (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers"),
        ]
    )  # fmt: skip
    body = pb.RoomRequest(roomId=room).SerializeToString()
    sock.sendall(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + _frame(4, 0, 0, b"")  # our SETTINGS
        + _frame(4, 1, 0, b"")  # ACK of the server's SETTINGS, unread
        + _frame(1, 4, 1, headers)
        + _frame(0, 1, 1, b"\x00" + struct.pack(">I", len(body)) + body)
    )
    sock.settimeout(5)
    kind = None
    while kind != 1:  # until the response headers (the listener is registered)
        head = _read(sock, 9)
        kind, flags, payload = head[3], head[4], _read(sock, int.from_bytes(head[:3], "big"))
        if kind == 6 and not flags & 1:
            sock.sendall(_frame(6, 1, 0, payload))  # PING ACK
    return sock


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data


async def listeners_become(server: Running, count: int, within: float) -> bool:
    for _ in range(int(within / 0.02)):
        if server.service.stats().listeners.get("grpc", 0) == count:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_client_that_stops_answering_pings_is_dropped_and_its_listener_freed() -> None:
    async with serve("grpc", **FAST_KEEPALIVE) as server:  # type: ignore[arg-type]
        sock = await asyncio.to_thread(vanished_client, server.url("grpc"), "ka")
        try:
            assert await listeners_become(server, 1, 5)
            assert await listeners_become(server, 0, 5)  # ping unanswered: connection closed
        finally:
            sock.close()


async def test_a_live_client_on_an_idle_stream_keeps_it_through_server_pings() -> None:
    async with serve("grpc", **FAST_KEEPALIVE) as server, room_stub(server.url("grpc")) as stub:  # type: ignore[arg-type]
        call = stub.StreamRoom(pb.RoomRequest(roomId="ka"))
        await call.initial_metadata()
        assert not await listeners_become(server, 0, 1.5)  # several ping rounds, answered
        assert not call.done()
        call.cancel()
