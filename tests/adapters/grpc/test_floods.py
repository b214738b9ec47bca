"""HTTP/2 frame floods on one gRPC connection, from the attacker's side over a real socket.

Each flood sends, flat out, a frame that does no work (roomchat/adapters/grpc/frames.py):
the attacker gets GOAWAY, while a second client (GET /healthz on the rest adapter, and a
gRPC GetRoom) is answered within 200 ms throughout and the server's RSS stays bounded.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from tests.adapters.grpc.client import room_stub
from tests.adapters.grpc.raw import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    PRIORITY,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    connect,
    frame,
    framed,
    next_frame,
    request_headers,
)
from tests.support import Process, roomchat_process, serve

ENHANCE_YOUR_CALM = struct.pack(">I", 0xB)
FRAMES = 300_000  # sent at most, in chunks; the flood of the issue was 600,000 empty DATA frames
CHUNK = 5_000
PROBE_DEADLINE = 0.2
RSS_GROWTH = 64 * 2**20

_stream_room = frame(HEADERS, END_HEADERS, 1, request_headers("/message.Room/StreamRoom")) + frame(
    DATA, 0, 1, framed(pb.RoomRequest(roomId="flood").SerializeToString())
)  # a stream left open: its request message sent, not ended
_cancelled = frame(HEADERS, END_HEADERS, 1, request_headers("/message.Room/StreamRoom")) + frame(
    RST_STREAM, 0, 1, struct.pack(">I", 8)
)


def _new_streams(count: int) -> bytes:
    return b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 2 * n + 1, b"") for n in range(count))


# name: (what opens the connection, one chunk of the flood, the GOAWAY's debug data)
FLOODS: dict[str, tuple[bytes, bytes, bytes]] = {
    "settings": (b"", frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65_535) * 100) * (CHUNK // 10),
                 b"too_many_settings"),
    "settings_ack": (b"", frame(SETTINGS, ACK, 0, b"") * CHUNK, b"too_many_settings"),
    "window_update": (b"", frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * CHUNK,
                      b"too_many_window_updates"),
    "priority": (b"", frame(PRIORITY, 0, 3, struct.pack(">IB", 0, 15)) * CHUNK, b"too_many_priority_frames"),
    "empty_data": (_stream_room, frame(DATA, 0, 1, b"") * CHUNK, b"too_many_empty_frames"),
    "one_byte_data": (_stream_room, frame(DATA, 0, 1, b"x") * CHUNK, b"too_many_empty_frames"),
    "empty_headers": (b"", _new_streams(CHUNK), b"too_many_empty_frames"),
    "continuation": (frame(HEADERS, 0, 1, request_headers("/message.Room/GetRoom")),
                     frame(CONTINUATION, 0, 1, b"") * CHUNK, b"header_block_too_large"),
    "headers_on_a_closed_stream": (_cancelled,
                                   frame(HEADERS, END_HEADERS, 1, request_headers("/x/y")) * CHUNK,
                                   b"too_many_closed_stream_frames"),
    "data_on_a_closed_stream": (_cancelled, frame(DATA, 0, 1, b"x" * 100) * CHUNK,
                                b"too_many_closed_stream_frames"),
    "ping_ack": (b"", frame(PING, ACK, 0, b"\0" * 8) * CHUNK, b"too_many_control_frames"),
    "unknown_type": (b"", frame(0x20, 0, 0, b"\0" * 8) * CHUNK, b"too_many_control_frames"),
}  # fmt: skip


def flood(url: str, opening: bytes, chunk: bytes) -> bytes | None:
    """Sends `opening`, then `chunk` over and over (up to FRAMES frames in all) until the
    server goes away; answers the GOAWAY's error code and debug data, if one came."""
    received = bytearray()
    with connect(url) as sock:
        sock.sendall(opening)
        try:
            for _ in range(FRAMES // CHUNK):
                sock.sendall(chunk)
                _read_available(sock, received)
                if _goaway(received) is not None:
                    break
        except OSError:
            pass  # closed by the server: what it sent before is still to be read
        _read_available(sock, received, until_closed=True)
    return _goaway(received)


def _read_available(sock: socket.socket, into: bytearray, until_closed: bool = False) -> None:
    sock.settimeout(2.0 if until_closed else 0.0)
    try:
        while chunk := sock.recv(65536):
            into += chunk
    except (BlockingIOError, TimeoutError, OSError):
        pass
    finally:
        sock.settimeout(5)


def _goaway(data: bytearray) -> bytes | None:
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        if data[pos + 3] == GOAWAY and pos + 9 + length <= len(data):
            return bytes(data[pos + 13 : pos + 9 + length])  # the error code and debug data
        pos += 9 + length
    return None


class Probe:
    """A second client: GET /healthz on rest, then GetRoom over gRPC, over and over."""

    def __init__(self, server: Process) -> None:
        self.server = server
        self.worst = 0.0
        self.answers = 0

    async def run(self, ready: asyncio.Event, done: threading.Event) -> None:
        """Answers once connected; then probes until `done`, and once more."""
        async with (
            httpx.AsyncClient(base_url=self.server.urls["rest"]) as http,
            room_stub(self.server.urls["grpc"]) as stub,
        ):
            await http.get("/healthz")  # connections made before the flood
            await stub.GetRoom(pb.RoomRequest(roomId="probe"))
            ready.set()
            while not self.answers or not done.is_set():
                started = time.monotonic()
                assert (await http.get("/healthz", timeout=5)).status_code == 200
                assert (await stub.GetRoom(pb.RoomRequest(roomId="probe"), timeout=5)).success
                self.worst = max(self.worst, (time.monotonic() - started) / 2)
                self.answers += 1
                await asyncio.sleep(0.01)  # the probe's pace, not a synchronisation


@pytest.fixture(scope="module")
def server() -> Iterator[Process]:
    args = ("--adapter", "grpc", "--adapter", "rest", "--port", "grpc=0,rest=0")
    with roomchat_process(*args, expect=2) as running:
        yield running


@pytest.mark.parametrize("kind", FLOODS)
async def test_a_frame_flood_gets_goaway_while_others_are_answered_in_time(
    server: Process, kind: str
) -> None:
    opening, chunk, reason = FLOODS[kind]
    rss = psutil.Process(server.proc.pid)
    before = rss.memory_info().rss
    ready, done = asyncio.Event(), threading.Event()
    probe = Probe(server)
    probing = asyncio.ensure_future(probe.run(ready, done))
    await asyncio.wait_for(ready.wait(), 10)

    def attack() -> bytes | None:
        try:
            return flood(server.urls["grpc"], opening, chunk)
        finally:
            done.set()

    goaway = await asyncio.to_thread(attack)
    await probing
    assert goaway == ENHANCE_YOUR_CALM + reason
    assert probe.answers > 0 and probe.worst < PROBE_DEADLINE, f"worst answer {probe.worst * 1000:.0f} ms"
    assert rss.memory_info().rss - before < RSS_GROWTH


REQUESTS = 300  # in one write, under the 1,000 rpcs a connection may have in flight


def pipelined(url: str, rounds: int) -> int:
    """`rounds` times: REQUESTS GetRoom calls in one write, then every answer read. Answers
    how many calls were answered (their trailers, with END_STREAM, came)."""
    request = framed(pb.RoomRequest(roomId="pipelined").SerializeToString())
    headers = request_headers("/message.Room/GetRoom")
    answered = 0
    with connect(url) as sock:
        for r in range(rounds):
            ids = range(2 * r * REQUESTS + 1, 2 * (r + 1) * REQUESTS + 1, 2)
            sock.sendall(
                b"".join(
                    frame(HEADERS, END_HEADERS, n, headers) + frame(DATA, END_STREAM, n, request) for n in ids
                )
            )
            ended = 0
            while ended < REQUESTS:
                kind, flags, _ = next_frame(sock)
                ended += kind == HEADERS and bool(flags & END_STREAM)
            answered += ended
    return answered


async def test_many_requests_in_one_write_are_decoded_in_turns_while_others_are_answered(
    server: Process,
) -> None:
    ready, done = asyncio.Event(), threading.Event()
    probe = Probe(server)
    probing = asyncio.ensure_future(probe.run(ready, done))
    await asyncio.wait_for(ready.wait(), 10)

    def attack() -> int:
        try:
            return pipelined(server.urls["grpc"], 2)
        finally:
            done.set()

    assert await asyncio.to_thread(attack) == 2 * REQUESTS
    await probing
    assert probe.answers > 0 and probe.worst < PROBE_DEADLINE, f"worst answer {probe.worst * 1000:.0f} ms"


def _oversized_frame(url: str) -> bytes | None:
    """A DATA frame header announcing 16 MiB, and nothing after it: the GOAWAY, if one comes."""
    received = bytearray()
    with connect(url) as sock:
        sock.sendall(struct.pack(">I", 2**24 - 1)[1:] + bytes([DATA, 0]) + struct.pack(">I", 1))
        _read_available(sock, received, until_closed=True)
    return _goaway(received)


async def test_a_frame_longer_than_the_frame_size_is_refused_from_its_header() -> None:
    # h2 would wait for all 16 MiB of it before refusing it.
    async with serve("grpc") as server:
        goaway = await asyncio.to_thread(_oversized_frame, server.url("grpc"))
    assert goaway == struct.pack(">I", 0x6) + b"frame_too_large"  # FRAME_SIZE_ERROR
