"""uvicorn's sans-I/O WebSocket protocol, with a way to write ready-made frames.

Why this one. A room's message must reach every connection as bytes built
once (server frames are unmasked, so they are the same for all), and all that
is pending for a connection must go out in one write, as on the SSE fast path.
Through ASGI that is impossible with any of uvicorn's protocols: each
`websocket.send` frames one message, so N pending messages cost N sends and N
frame builds per connection, and a writer task per connection must await them.
Of the three, `websockets` (the library's legacy asyncio protocol) also runs
three tasks per connection; `wsproto` and the sans-I/O one run none of their
own. The sans-I/O one parses and answers the client's frames (ping, close, the
size limit: 1009) and sends keepalive pings; the endpoint
(roomchat.adapters.http.websocket) writes room frames straight to its socket
through `write`, beneath ASGI, while the handshake, the client's frames and
the closing handshake stay ASGI.

Measured with `roomchat bench` (docs/websocket.md): this path against the SSE
fast path, 1,000 listeners on one room. The ASGI-only alternatives were judged
from their code, not benchmarked.

What a client sends is bounded here too (issue 24): uvicorn parses a whole
read at once and answers every ping, so a client sending pings flat out held
the loop for seconds, and one that never read its pongs filled the server's
memory with them. Here a connection parses at most `READ_PIECE` bytes of frames
per loop turn (the rest waits, and reading is paused meanwhile); only the
latest ping of a piece is answered (RFC 6455 5.5.3 allows it), and while the
socket is full at most that one pong is owed and nothing more is read. A
client sending more than `MAX_PINGS` pings (or pongs) a second is closed with
1008 "too many pings", as grpc core sends GOAWAY to one that pings too often.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from roomchat.adapters.http.ws_frames import GOING_AWAY

READ_PIECE = 4096
"""Bytes of a client's frames parsed per loop turn at most: 680 empty pings, a few ms of work."""
MAX_PINGS = 50
"""Pings and unsolicited pongs a client may send in one second; past it: closed with 1008.

Browsers never send either; a client library pings every few seconds at most."""
CLOSE_POLICY = 1008  # policy violation
_PONG = b"\x8a"  # the first byte of a pong frame (FIN + opcode 10) as the server sends it


class RoomchatWebSocketProtocol(WebSocketsSansIOProtocol):
    """Pass as `uvicorn.Config(ws=RoomchatWebSocketProtocol)`.

    Relies on these internals of uvicorn 0.5x's sans-I/O protocol: `transport`,
    `conn` (websockets' ServerProtocol), `close_sent`, `writable`, `queue`,
    `stop_keepalive`, `close_timer`, `handshake_complete`, `send_500_response`,
    `read_paused`, `handle_ping`, `handle_pong`, `receive`, `loop`, `queue`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Called when the socket takes writes again after being full: the endpoint
        # then writes what piled up meanwhile.
        self.on_writable: Callable[[], None] | None = None
        # The socket's buffer is past its high-water mark: write nothing more for now.
        # Read on every flush: a plain instance attribute (`writable.is_set()` is a
        # call, and a class attribute read through an instance is not specialized).
        self.paused = False
        self._unread = b""  # read from the socket and not parsed yet, from `_at` on
        self._at = 0
        self._pong: bytes | None = None  # the latest ping's pong, owed while the socket is full
        self._pings = 0  # pings and pongs received since `_pings_since`
        self._pings_since = 0.0

    @property
    def open(self) -> bool:
        """Frames may be written: the handshake is done and no close was sent or seen."""
        return self.handshake_complete and not self.close_sent and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        """Write whole frames as they are; dropped once the connection is closing."""
        if self.open:
            self.transport.write(data)

    # -- reading: a piece per turn, nothing while the socket is full ---------------

    def data_received(self, data: bytes) -> None:
        if self._unread:  # a read that was under way when reading paused
            self._unread = self._unread[self._at :] + data
            self._at = 0
            return
        self._unread, self._at = data, 0
        self._parse_piece()

    def _parse_piece(self) -> None:
        data, at = self._unread, self._at
        if self.transport.is_closing():
            self._unread, self._at = b"", 0
            return
        piece = data if at == 0 and len(data) <= READ_PIECE else data[at : at + READ_PIECE]
        if at + len(piece) < len(data):
            self._at = at + len(piece)
            self._pause_reading()
            self.loop.call_soon(self._parse_piece)
        else:
            self._unread, self._at = b"", 0
            self._resume_reading()
        super().data_received(piece)

    def _pause_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        """Read again once nothing holds it: frames left to parse, a full socket, or
        messages the app has not taken (uvicorn's `read_paused`)."""
        if not (self._unread or self.paused or self.read_paused or self.transport.is_closing()):
            self.transport.resume_reading()

    async def receive(self) -> Any:
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():  # uvicorn's, with the resume through the gate
            self.read_paused = False
            self._resume_reading()
        return message

    def handle_ping(self) -> None:
        """Answer the latest ping of the piece only; while the socket is full, owe that one."""
        out = self.conn.data_to_send()  # every pong of the piece, then maybe a close and EOF
        pong = next((data for data in reversed(out) if data[:1] == _PONG), None)
        rest = [data for data in out if data[:1] != _PONG]
        if pong is None and not rest:
            return
        if self._too_many_pings(len(out) - len(rest)):
            return
        if self.paused and not rest:
            self._pong = pong
            return
        self._pong = None
        self.transport.write(b"".join([pong, *rest] if pong is not None else rest))

    def handle_pong(self, event: Any) -> None:
        if not self._too_many_pings(1):
            super().handle_pong(event)

    def _too_many_pings(self, count: int) -> bool:
        """Count `count` pings (or pongs); past `MAX_PINGS` in a second, close with 1008."""
        now = self.loop.time()
        if now - self._pings_since >= 1.0:
            self._pings, self._pings_since = 0, now
        self._pings += count
        if self._pings <= MAX_PINGS or self.close_sent or self.transport.is_closing():
            return False
        self._close_now(CLOSE_POLICY, "too many pings")
        # A client that reads nothing would hold the socket open with the close frame unsent.
        self.close_timer = self.loop.call_later(1.0, self.transport.abort)
        return True

    # -- writing ---------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused = True
        self._pause_reading()  # a client that does not read what it asked for is not read either

    def resume_writing(self) -> None:
        super().resume_writing()
        self.paused = False
        pong, self._pong = self._pong, None
        if pong is not None and self.open:
            self.transport.write(pong)
        self._resume_reading()
        if self.on_writable is not None:
            self.on_writable()

    def shutdown(self) -> None:
        """The server is stopping: close with 1001 (going away), not uvicorn's 1012."""
        if self.close_sent or not self.handshake_complete:
            super().shutdown()
            return
        self._close_now(GOING_AWAY, "server stopping")

    def _close_now(self, code: int, reason: str) -> None:
        """Send a close frame and close the connection, without waiting for the client's."""
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
