"""Server keepalive pings drop a client that vanished without closing its connection;
client keepalive pings are accepted as the Go server did, also without a call open."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

from roomchat.adapters import AdapterSettings
from roomchat.adapters.grpc import GrpcAdapter
from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.bootstrap import ServiceSettings, build_service
from tests.adapters.grpc.client import room_stub
from tests.adapters.grpc.raw import (
    ACK,
    ENHANCE_YOUR_CALM,
    GOAWAY,
    PING,
    connect,
    frame,
    framed,
    next_frame,
    request_headers,
)
from tests.support import serve

FAST_KEEPALIVE = {  # the adapter's settings, with the 20 s ping timeout made short
    "keepalive": 0.2,
    "options": {"grpc.keepalive_timeout_ms": "500"},
}


def vanished_client(url: str, room: str) -> socket.socket:
    """Opens StreamRoom by hand, answers pings until the stream is up, then goes silent:
    a client whose machine vanished without closing the connection."""
    sock = connect(url)
    headers = request_headers("/message.Room/StreamRoom")
    sock.sendall(
        frame(1, 4, 1, headers) + frame(0, 1, 1, framed(pb.RoomRequest(roomId=room).SerializeToString()))
    )
    kind = None
    while kind != 1:  # until the response headers (the listener is registered)
        kind, _, _ = next_frame(sock)
    return sock


def pinging_client(url: str, every: float, count: int) -> tuple[int, bytes | None]:
    """Opens no call and sends `count` PINGs, each `every` seconds after the previous one's
    ACK. Answers how many were acked, and the GOAWAY's error code and debug data if the
    server sent one (grpc sends it in place of the ACK of the ping that was one too many)."""
    with connect(url) as sock:
        for sent in range(count):
            if sent:
                time.sleep(every)  # the interval under test, not a synchronisation
            payload = struct.pack(">Q", sent)
            sock.sendall(frame(PING, 0, 0, payload))
            kind, flags, data = next_frame(sock)
            while not (kind == PING and flags & ACK and data == payload):
                if kind == GOAWAY:
                    return sent, data[4:]
                kind, flags, data = next_frame(sock)
    return count, None


async def test_a_client_that_stops_answering_pings_is_dropped_and_its_listener_freed() -> None:
    async with serve("grpc", **FAST_KEEPALIVE) as server:  # type: ignore[arg-type]
        sock = await asyncio.to_thread(vanished_client, server.url("grpc"), "ka")
        try:
            assert await server.listeners_become("ka", 1, 5)
            assert await server.listeners_become("ka", 0, 5)  # ping unanswered: connection closed
        finally:
            sock.close()


async def test_a_live_client_on_an_idle_stream_keeps_it_through_server_pings() -> None:
    async with serve("grpc", **FAST_KEEPALIVE) as server, room_stub(server.url("grpc")) as stub:  # type: ignore[arg-type]
        call = stub.StreamRoom(pb.RoomRequest(roomId="ka"))
        await call.initial_metadata()
        assert not await server.listeners_become("ka", 0, 1.5)  # several ping rounds, answered
        assert not call.done()
        call.cancel()


# The minimum interval between client pings, made short. This key is the one grpc core
# reads for it (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS); pings sooner are
# strikes, and more than grpc.http2.max_ping_strikes (2) of them get a GOAWAY.
SHORT_MIN_PING = {"grpc.http2.min_ping_interval_without_data_ms": "300"}


async def test_client_pings_without_a_call_at_the_minimum_interval_are_all_acked() -> None:
    # 6 pings: the first is free, and so is the second if grpc's first WINDOW_UPDATE goes
    # out between them (it resets the strikes); then 3 strikes, so 4 or 5 pings can fail.
    async with serve("grpc", options=SHORT_MIN_PING) as server:
        assert await asyncio.to_thread(pinging_client, server.url("grpc"), 0.4, 6) == (6, None)


async def test_client_pings_more_often_than_the_minimum_get_a_goaway() -> None:
    async with serve("grpc", options=SHORT_MIN_PING) as server:
        _, goaway = await asyncio.to_thread(pinging_client, server.url("grpc"), 0.02, 10)
    assert goaway == struct.pack(">I", ENHANCE_YOUR_CALM) + b"too_many_pings"


def test_by_default_clients_may_ping_without_a_call_every_30_s_and_more_often() -> None:
    adapter = GrpcAdapter(build_service(ServiceSettings()), AdapterSettings())
    options = dict(adapter.options())
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert int(options["grpc.http2.min_ping_interval_without_data_ms"]) <= 30_000


def _ping_after_data(sock: socket.socket, n: int) -> bool:
    """Waits for a DATA frame (a message of the stream), then pings and waits for the ACK:
    True if acked, False if the server sent GOAWAY instead."""
    kind = None
    while kind != 0:
        kind, _, _ = next_frame(sock)
    payload = struct.pack(">Q", n)
    sock.sendall(frame(PING, 0, 0, payload))
    while True:
        kind, flags, data = next_frame(sock)
        if kind == GOAWAY:
            return False
        if kind == PING and flags & ACK and data == payload:
            return True


async def test_pings_sooner_than_the_minimum_are_no_strikes_while_the_server_sends_data() -> None:
    # As grpc core counts them: data or headers sent since the last ping clear the strikes,
    # the stream's fast path included (a client's BDP pings come with the data it receives).
    async with serve("grpc", options=SHORT_MIN_PING) as server, room_stub(server.url("grpc")) as stub:
        sock = await asyncio.to_thread(vanished_client, server.url("grpc"), "busy")
        try:
            for n in range(6):  # far sooner than 300 ms apart
                await stub.PostToRoom(pb.Message(userId="a", roomId="busy", text=f"m{n}"))
                assert await asyncio.to_thread(_ping_after_data, sock, n), f"GOAWAY at ping {n}"
        finally:
            sock.close()
