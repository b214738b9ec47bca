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
PER_STREAM = 3 * CHUNK  # a request's DATA: under what the server decodes in one turn (64 KiB)
STREAMS = 95  # 4.56 MB in all: more than the server's 4 MiB connection window; resets under 100/s


class Window:
    """The client's send window on the connection, as the server's WINDOW_UPDATEs grow it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.size = 65_535
        self.answers: set[int] = set()  # streams the server has sent response headers on

    def take(self, size: int) -> None:
        """Waits (the socket's 5 s timeout) until the server has opened the window for `size`."""
        while self.size < size:
            self._next()
        self.size -= size

    def answered(self, stream: int) -> None:
        while stream not in self.answers:
            self._next()

    def _next(self) -> None:
        head = self.sock.recv(9, socket.MSG_PEEK | socket.MSG_WAITALL)
        stream = struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
        kind, _, payload = next_frame(self.sock)
        if kind == WINDOW_UPDATE and stream == 0:
            self.size += struct.unpack(">I", payload[:4])[0] & 0x7FFFFFFF
        elif kind == HEADERS:
            self.answers.add(stream)


def cancel_with_data_unread(url: str) -> bool:
    """STREAMS times, in one write: a request's HEADERS and DATA, its RST_STREAM, and a
    GetRoom, whose answer the client waits for (so each write is one read of the server's).
    A client honouring flow control: True if every GetRoom was answered."""
    headers = request_headers("/message.Room/GetRoom")
    # One request message whose length prefix says it ends with the last DATA frame, so the
    # server waits for all of it (it does not answer, and close the stream, before the reset).
    message = b"\0" + struct.pack(">I", PER_STREAM - 5) + b"\0" * (PER_STREAM - 5)
    parts = [message[i : i + CHUNK] for i in range(0, PER_STREAM, CHUNK)]
    get_room = framed(pb.RoomRequest(roomId="r").SerializeToString())
    with connect(url) as sock:
        window = Window(sock)
        for n in range(STREAMS):
            cancelled, asked = 4 * n + 1, 4 * n + 3
            window.take(PER_STREAM + len(get_room))
            body = b"".join(frame(DATA, 0, cancelled, part) for part in parts)
            cancel = frame(RST_STREAM, 0, cancelled, struct.pack(">I", 8))  # CANCEL
            ask = frame(HEADERS, END_HEADERS, asked, headers) + frame(DATA, END_STREAM, asked, get_room)
            sock.sendall(frame(HEADERS, END_HEADERS, cancelled, headers) + body + cancel + ask)
            window.answered(asked)
    return True


async def test_streams_cancelled_with_their_data_unread_do_not_use_up_the_window() -> None:
    async with serve("grpc") as server:
        assert await asyncio.to_thread(cancel_with_data_unread, server.url("grpc"))
