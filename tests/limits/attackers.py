"""Abusive clients on raw sockets (issue 24): resumers that never read, ping flooders.

Blocking sockets with a 4 KiB receive buffer, so what the server writes and the
client does not read stays with the server. Shared by tests/limits/test_stream_abuse.py
and benchmarks/replay_abuse.py.
"""

from __future__ import annotations

import json
import socket
import struct
import time

import h2.config
import h2.connection
import h2.settings

from roomchat.adapters.grpc.generated import message_pb2 as pb

RCVBUF = 4096
BIG_TEXT = "\U0001f600" * 4096  # the longest text by default: 16 KiB of UTF-8


def raw(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.connect(("127.0.0.1", port))
    return sock


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def sse_resumer(base: str, room: str, after: str) -> socket.socket:
    """GET the room's event stream resuming after `after`, and never read."""
    sock = raw(port_of(base))
    sock.sendall(f"GET /api/stream/{room}?lastEventId={after} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def ws_open(base: str) -> socket.socket:
    """A WebSocket on /api/ws, handshake done."""
    sock = raw(port_of(base))
    sock.sendall(
        b"GET /api/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: roomchat.v1\r\n\r\n"
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert b" 101 " in answer, answer
    return sock


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (with a zero mask, so the payload goes as it is)."""
    assert len(payload) < 126
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + b"\0\0\0\0" + payload


PING = client_frame(b"", 0x9)
BIG_PING = client_frame(b"x" * 125, 0x9)  # the largest a control frame may carry: its pong is as large
JSON_PING = client_frame(b'{"type":"ping"}')


def ws_resumer(base: str, room: str, after: str) -> socket.socket:
    """Subscribe to the room resuming after `after`, and never read."""
    sock = ws_open(base)
    sock.sendall(client_frame(json.dumps({"type": "subscribe", "roomId": room, "lastId": after}).encode()))
    return sock


def grpc_resumer(port: int, room: str, after: str) -> socket.socket:
    """StreamRoom resuming after `after`, with 2 GiB windows and 16 MiB frames allowed; never read."""
    sock = raw(port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    big = 2**31 - 1
    codes = h2.settings.SettingCodes
    conn.update_settings({codes.INITIAL_WINDOW_SIZE: big, codes.MAX_FRAME_SIZE: 2**24 - 1})
    conn.increment_flow_control_window(big - 65535)
    request = pb.RoomRequest(roomId=room, lastId=after).SerializeToString()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/message.Room/StreamRoom"),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    conn.send_headers(1, headers)
    conn.send_data(1, b"\0" + struct.pack("!I", len(request)) + request, end_stream=True)
    sock.sendall(conn.data_to_send())
    return sock


def flood(sock: socket.socket, frame: bytes, seconds: float, frames: int | None = None) -> int:
    """Send `frame` over and over (64 KiB at a time) for `seconds` or `frames`; how many were sent.

    Stops early, without an error, once the server closes the socket or stops reading it.
    """
    per_chunk = 65536 // len(frame)
    chunk = frame * per_chunk
    sent = 0
    end = time.monotonic() + seconds
    sock.settimeout(max(0.1, seconds))
    try:
        while time.monotonic() < end and (frames is None or sent < frames):
            sock.sendall(chunk)
            sent += per_chunk
    except OSError:
        pass
    return sent
