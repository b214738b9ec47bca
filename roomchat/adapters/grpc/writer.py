"""How the gRPC adapter writes: few, large writes.

Each `transport.write` is a syscall and a TCP segment the client is woken for,
and it costs more than the Python around it. So a unary reply (headers,
message, trailers) goes out in one write (`one_write`), and a stream's pending
messages in one DATA frame (`Direct`, the fast path of StreamRoom).

As on the SSE fast path (roomchat.adapters.http.sse), a push marks the stream
and one callback per event-loop turn writes what every marked stream has
pending, with no task woken per listener. Each message's gRPC frame (prefix
and protobuf bytes, `codec.grpc_frame`) is built once and shared; a stream's
pending frames go out as one DATA frame in one `transport.write`.

The DATA frame's 9-byte header is written here rather than by h2, whose
`send_data` (state machine, frame objects, debug logging) costs more than the
rest of a delivery together; h2's flow-control windows are debited exactly as
its `send_data` would. Anything that does not fit at once (a window or the
peer's frame size too small, the socket's buffer full) and anything while the
stream's own task is not parked in `wait` is left to that task, which sends
through grpclib with its flow control; so the two never interleave.
"""

from __future__ import annotations

import contextlib
from asyncio import Transport
from collections.abc import Iterator

from grpclib.protocol import Stream

from roomchat.adapters.grpc.codec import grpc_frame
from roomchat.adapters.grpc.connection import PolicedConnection
from roomchat.adapters.http.flushing import MarkedOnce, flusher
from roomchat.core import EndReason, Listener


class Direct(MarkedOnce):
    """Writes one listener's pending messages on one HTTP/2 stream."""

    __slots__ = (
        "_connection",
        "_flusher",
        "_h2",
        "_held",
        "_id",
        "_listener",
        "_marked",
        "_stream_id",
        "_transport",
    )

    def __init__(self, listener: Listener, stream: Stream) -> None:
        assert stream.id is not None
        self._listener = listener
        self._connection: PolicedConnection = stream.connection  # type: ignore[assignment]
        self._h2 = stream._h2_connection
        self._transport = stream._transport
        self._id = stream.id
        self._stream_id = stream.id.to_bytes(4, "big")
        self._flusher = flusher()
        self._marked = False
        self._held = b""  # taken but not written: the stream's task sends it first
        listener.notify = self.mark

    def detach(self) -> None:
        self._listener.notify = None

    def unsent(self) -> bytes:
        """For the stream's task: everything not yet written, in order."""
        held, self._held = self._held, b""
        batch = self._listener.take()
        if not batch:
            return held
        return held + b"".join([m.encode(grpc_frame) for m in batch])

    def flush(self) -> None:
        self._marked = False
        listener = self._listener
        if not listener.waiting or self._held or not self._connection.write_ready.is_set():
            listener.wake()
            return
        stream = self._h2.streams.get(self._id)
        if stream is None or stream.closed or self._transport.is_closing():
            self.hang_up()
            return
        batch = listener.take()
        if not batch:
            return
        data = b"".join([m.encode(grpc_frame) for m in batch])
        size = len(data)
        h2 = self._h2
        if (
            size > h2.max_outbound_frame_size
            or size > h2.outbound_flow_control_window
            or size > stream.outbound_flow_control_window
        ):
            self._held = data
            listener.wake()
            return
        h2.outbound_flow_control_window -= size
        stream.outbound_flow_control_window -= size
        self._connection.sent_data()
        # Whatever h2 has queued goes first (grpclib writes it out at once, so usually nothing).
        ahead = h2.data_to_send()
        self._transport.write(ahead + size.to_bytes(3, "big") + b"\x00\x00" + self._stream_id + data)

    def hang_up(self) -> None:
        self._listener.end(EndReason.CLOSED)


@contextlib.contextmanager
def one_write(stream: Stream, size: int) -> Iterator[None]:
    """What grpclib writes for `stream` inside, sent in one write at the end.

    Only where nothing inside can wait: the socket takes writes and the windows
    have room for `size` bytes of DATA (else grpclib's sends could suspend, and a
    header block held here would reach the client after a later one, which
    HPACK forbids). Otherwise grpclib writes as it goes.
    """
    assert stream.id is not None
    if not stream.connection.write_ready.is_set() or size > stream._h2_connection.local_flow_control_window(
        stream.id
    ):
        yield
        return
    real = stream._transport
    held = _Held(real)
    stream._transport = held  # type: ignore[assignment]
    try:
        yield
    finally:
        stream._transport = real
        if held.parts and not real.is_closing():
            real.write(b"".join(held.parts))


class _Held:
    """Stands in for a stream's transport in `one_write`: keeps what is written."""

    __slots__ = ("_real", "parts")

    def __init__(self, real: Transport) -> None:
        self._real = real
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def is_closing(self) -> bool:
        return self._real.is_closing()
