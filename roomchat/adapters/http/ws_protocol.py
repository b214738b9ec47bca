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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from roomchat.adapters.http.ws_frames import GOING_AWAY


class RoomchatWebSocketProtocol(WebSocketsSansIOProtocol):
    """Pass as `uvicorn.Config(ws=RoomchatWebSocketProtocol)`.

    Relies on these internals of uvicorn 0.5x's sans-I/O protocol: `transport`,
    `conn` (websockets' ServerProtocol), `close_sent`, `writable`, `queue`,
    `stop_keepalive`, `close_timer`, `handshake_complete`, `send_500_response`.
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

    @property
    def open(self) -> bool:
        """Frames may be written: the handshake is done and no close was sent or seen."""
        return self.handshake_complete and not self.close_sent and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        """Write whole frames as they are; dropped once the connection is closing."""
        if self.open:
            self.transport.write(data)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.paused = False
        if self.on_writable is not None:
            self.on_writable()

    def shutdown(self) -> None:
        """The server is stopping: close with 1001 (going away), not uvicorn's 1012."""
        if self.close_sent or not self.handshake_complete:
            super().shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
        self.conn.send_close(GOING_AWAY, "server stopping")
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
