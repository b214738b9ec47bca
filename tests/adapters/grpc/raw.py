"""A raw HTTP/2 client for the tests that must send what grpc clients never do:
frames by hand, a request that lies about its size, pings and resets in bursts."""

from __future__ import annotations

import socket
import struct

from tests.adapters.grpc.client import target


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def literal(name: str, value: str) -> bytes:  # HPACK: literal without indexing, new name
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


# HTTP/2 frame types, and the flags the tests use
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10)
)
ACK = END_STREAM = 1  # ACK on SETTINGS and PING, END_STREAM on DATA and HEADERS
END_HEADERS = 4
ENHANCE_YOUR_CALM = 0xB  # the GOAWAY error code


def connect(url: str) -> socket.socket:
    """A raw HTTP/2 connection: the preface, our SETTINGS, and the ACK of the server's
    SETTINGS (unread: we use none of them)."""
    host, port = target(url).split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0, b"") + frame(SETTINGS, ACK, 0, b"")
    )
    return sock


def next_frame(sock: socket.socket) -> tuple[int, int, bytes]:
    """The next frame's type, flags and payload; a PING from the server is answered on the way."""
    head = recv_exactly(sock, 9)
    kind, flags, payload = head[3], head[4], recv_exactly(sock, int.from_bytes(head[:3], "big"))
    if kind == PING and not flags & ACK:
        sock.sendall(frame(PING, ACK, 0, payload))
    return kind, flags, payload


def request_headers(path: str) -> bytes:
    """The HPACK block of a gRPC request for `path`, every header a literal."""
    return b"".join(
        literal(n, v)
        for n, v in [
            (":method", "POST"), (":scheme", "http"), (":path", path),
            (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers"),
        ]
    )  # fmt: skip


def framed(message: bytes) -> bytes:
    """One gRPC message: not compressed, its length, the bytes."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the server closed the connection"
        data += chunk
    return data
