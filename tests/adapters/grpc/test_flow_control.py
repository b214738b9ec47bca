"""The connection's receive window survives streams the client cancels with data unread
(grpclib issue #217: HEADERS, DATA and RST_STREAM in one read leaked the DATA's share of
the window, until the connection carried no data at all)."""

from __future__ import annotations

import asyncio
import socket
import struct

from roomchat.adapters.grpc.generated import message_pb2 as pb
from tests.adapters.grpc.raw import (
    DATA,
    END_HEADERS,
    END_STREAM,
    HEADERS,
    RST_STREAM,
    WINDOW_UPDATE,
    connect,
    frame,
    framed,
    next_frame,
    request_headers,
)
from tests.support import serve

CHUNK = 16_000  # a DATA frame's payload, under the 16 KiB frame size
PER_STREAM = 4 * CHUNK  # under the stream's initial window (65,535) before SETTINGS are read
STREAMS = 80  # 5 MB in all: more than the server's 4 MiB connection window; resets stay under 100/s


class Window:
    """The client's send window on the connection, as the server's WINDOW_UPDATEs grow it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.size = 65_535

    def take(self, size: int) -> None:
        """Waits (the socket's 5 s timeout) until the server has opened the window for `size`."""
        while self.size < size:
            kind, _, payload = next_frame_on(self.sock)
            if kind == WINDOW_UPDATE:
                self.size += struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
        self.size -= size


def next_frame_on(sock: socket.socket) -> tuple[int, int, bytes]:
    """next_frame, keeping only connection-level WINDOW_UPDATEs (stream ones have stream ids)."""
    head = sock.recv(9, socket.MSG_PEEK | socket.MSG_WAITALL)
    kind, flags, payload = next_frame(sock)
    stream = struct.unpack(">I", head[5:9])[0]
    return (kind if stream == 0 else -1), flags, payload


def cancel_with_data_unread(url: str) -> bool:
    """Sends STREAMS requests, each HEADERS, DATA and RST_STREAM in one write, as a client
    honouring flow control; then a GetRoom on the same connection: True if answered."""
    headers = request_headers("/message.Room/GetRoom")
    with connect(url) as sock:
        window = Window(sock)
        for n in range(STREAMS):
            stream = 2 * n + 1
            window.take(PER_STREAM)
            body = b"".join(frame(DATA, 0, stream, b"\0" * CHUNK) for _ in range(PER_STREAM // CHUNK))
            cancel = frame(RST_STREAM, 0, stream, struct.pack(">I", 8))  # CANCEL
            sock.sendall(frame(HEADERS, END_HEADERS, stream, headers) + body + cancel)
        last = 2 * STREAMS + 1
        request = framed(pb.RoomRequest(roomId="r").SerializeToString())
        window.take(len(request))
        sock.sendall(frame(HEADERS, END_HEADERS, last, headers) + frame(DATA, END_STREAM, last, request))
        while True:
            head = sock.recv(9, socket.MSG_PEEK | socket.MSG_WAITALL)
            kind, _, _ = next_frame(sock)
            if kind == HEADERS and struct.unpack(">I", head[5:9])[0] == last:
                return True


async def test_streams_cancelled_with_their_data_unread_do_not_use_up_the_window() -> None:
    async with serve("grpc") as server:
        assert await asyncio.to_thread(cancel_with_data_unread, server.url("grpc"))
