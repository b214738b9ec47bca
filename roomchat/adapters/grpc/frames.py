"""What one HTTP/2 connection may send that does no work, and how much of it is decoded at once.

h2 is pure Python: each frame costs the loop some microseconds whatever it
carries, and a read of 256 KiB holds 29,000 empty frames. So, before h2 sees
them, the frames of a read are walked by their 9-byte headers (cheap) and:

- frames that serve no rpc are counted per connection, per kind, in windows
  of one second, as grpc core and nginx count "useless" frames; past a kind's
  budget the connection gets GOAWAY ENHANCE_YOUR_CALM with the kind's reason
  and is closed. The budgets are far above what any gRPC client sends;
- one turn of the event loop decodes at most `FRAMES_PER_TURN` frames,
  `BYTES_PER_TURN` bytes and `STREAMS_PER_TURN` new streams (grpc core's
  `max_requests_per_read`) of one connection; the rest waits, with the
  connection's reading paused, for the next turn, so other connections and
  the HTTP adapters are served in between.

Pings and cancelled open streams have their own policies (connection.py).
"""

from __future__ import annotations

import time
from typing import Final

from h2.connection import H2Connection

FRAME_HEADER: Final = 9
PREFACE: Final = 24  # b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", before the first frame

FRAMES_PER_TURN: Final = 64
BYTES_PER_TURN: Final = 64 * 1024
STREAMS_PER_TURN: Final = 32

SMALL_DATA: Final = 64  # a DATA frame carrying fewer bytes, and not ending its stream, does no work
MAX_HEADER_BLOCK: Final = 64 * 1024  # HEADERS and CONTINUATIONs of one block (the header list we announce)
MAX_CONTINUATIONS: Final = 32

# The kinds of frames that do no work, each with its budget per second and its GOAWAY reason.
SETTINGS, WINDOW_UPDATES, PRIORITY, EMPTY, CLOSED, CONTROL = range(6)
BUDGETS: Final = (
    100,  # SETTINGS: one per frame, one more per setting in it; ACKs count too
    100,  # WINDOW_UPDATE, plus WINDOW_CREDIT per stream opened and per DATA frame the server sent
    100,  # PRIORITY (gRPC clients send none)
    1000,  # DATA under SMALL_DATA bytes not ending its stream; empty HEADERS and CONTINUATION
    100,  # HEADERS, DATA or RST_STREAM for a stream already closed (h2 answers each with RST_STREAM)
    100,  # PING ACKs, unknown (extension) frame types
)
REASONS: Final = (
    b"too_many_settings",
    b"too_many_window_updates",
    b"too_many_priority_frames",
    b"too_many_empty_frames",
    b"too_many_closed_stream_frames",
    b"too_many_control_frames",
)
TOO_LARGE: Final = b"header_block_too_large"
FRAME_TOO_LARGE: Final = b"frame_too_large"  # over the frame size we announced: FRAME_SIZE_ERROR, not calm
# WINDOW_UPDATEs a client may send for each stream it opens and each DATA frame it is sent:
# grpc core sends one for the connection per unary reply and one per message a stream reads.
WINDOW_CREDIT: Final = 4
MAX_WINDOW_CREDIT: Final = 10_000  # carried from one second to the next


class FrameMeter:
    """One connection's frame budgets: where to stop decoding this turn, or why to GOAWAY."""

    __slots__ = ("_block", "_continuations", "_counts", "_data_frames", "_preface", "_since")

    def __init__(self) -> None:
        self._counts = [0] * len(BUDGETS)
        self._since = 0.0
        self._preface = PREFACE
        self._block = -1  # bytes so far of a header block not ended yet, else -1
        self._continuations = 0
        self._data_frames = 0  # DATA frames sent, at the last decode

    def cut(
        self, data: bytes, start: int, h2: H2Connection, data_frames: int
    ) -> tuple[int, bool, bytes | None]:
        """Where to stop decoding `data` from `start` this turn (after whole frames); whether
        whole frames are left for the next turn; and the GOAWAY reason if the client is past
        a budget.

        `data_frames`: how many DATA frames the server has sent on the connection so far.
        """
        counts = self._counts
        now = time.monotonic()
        if now - self._since >= 1.0:
            credit = max(-MAX_WINDOW_CREDIT, min(0, counts[WINDOW_UPDATES]))  # for replies still on the way
            counts[:] = [0] * len(BUDGETS)
            counts[WINDOW_UPDATES] = credit
            self._since = now
        if data_frames != self._data_frames:
            counts[WINDOW_UPDATES] -= WINDOW_CREDIT * (data_frames - self._data_frames)
            self._data_frames = data_frames
        size = len(data)
        pos = start
        if self._preface:
            skipped = min(self._preface, size - pos)
            self._preface -= skipped
            pos += skipped
        stop = pos + BYTES_PER_TURN
        frames = streams = 0
        highest = h2.highest_inbound_stream_id  # streams above it are opened by this read
        while pos + FRAME_HEADER <= size:
            length = data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2]
            end = pos + FRAME_HEADER + length
            if end > size:
                if length > h2.max_inbound_frame_size:  # h2 would wait for all of it before refusing it
                    return pos, False, FRAME_TOO_LARGE
                break
            kind, flags = data[pos + 3], data[pos + 4]
            if kind <= 3 or kind == 9:  # DATA, HEADERS, PRIORITY, RST_STREAM, CONTINUATION
                stream = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                if kind == 1 and stream > highest:
                    streams += 1
                    counts[WINDOW_UPDATES] -= WINDOW_CREDIT
                    useless = EMPTY if length == 0 else -1
                else:
                    closed = stream <= highest and _closed(h2, stream)
                    useless = _on_stream(kind, flags, length, closed)
                if kind in (1, 9):
                    reason = self._header_block(kind, flags, length)
                    if reason is not None:
                        return pos, False, reason
            else:
                useless = _control(kind, flags, length)
            if useless >= 0:
                counts[useless] += 1 + (length // 6 if useless == SETTINGS else 0)
                if counts[useless] > BUDGETS[useless]:
                    return pos, False, REASONS[useless]
            pos = end
            frames += 1
            if frames >= FRAMES_PER_TURN or streams >= STREAMS_PER_TURN or pos >= stop:
                return pos, pos + FRAME_HEADER <= size, None
        return pos, False, None

    def _header_block(self, kind: int, flags: int, length: int) -> bytes | None:
        if kind == 1:
            self._block, self._continuations = length, 0
        elif self._block >= 0:
            self._block += length
            self._continuations += 1
        if self._block > MAX_HEADER_BLOCK or self._continuations > MAX_CONTINUATIONS:
            return TOO_LARGE
        if flags & 4:  # END_HEADERS
            self._block = -1
        return None


def _on_stream(kind: int, flags: int, length: int, closed: bool) -> int:
    """The budget a frame on a stream counts against, or -1."""
    if kind == 2:
        return PRIORITY
    if closed:
        return CLOSED
    if kind == 0 and length < SMALL_DATA and not flags & 1:  # DATA, not END_STREAM
        return EMPTY
    if length == 0 and kind != 3:  # an empty HEADERS or CONTINUATION
        return EMPTY
    return -1


def _control(kind: int, flags: int, length: int) -> int:
    """The budget a connection-level frame counts against, or -1."""
    if kind == 4:
        return SETTINGS
    if kind == 8:
        return WINDOW_UPDATES
    if kind == 6:
        return CONTROL if flags & 1 else -1  # a PING ACK; pings have their own policy
    if kind in (5, 7):
        return -1  # PUSH_PROMISE (h2 refuses it), GOAWAY
    return CONTROL  # an extension frame h2 ignores


def _closed(h2: H2Connection, stream: int) -> bool:
    known = h2.streams.get(stream)
    return known is None or known.closed
