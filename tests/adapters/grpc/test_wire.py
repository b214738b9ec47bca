"""The stream's fast path on the wire: many streams on one connection, messages larger
than an HTTP/2 frame or a client's window, a flood, and a request that lies about its size."""

from __future__ import annotations

import asyncio
import struct

import hpack

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.bootstrap import ServiceSettings
from tests.adapters.grpc.client import post, read, room_stub
from tests.adapters.grpc.raw import (
    ENHANCE_YOUR_CALM,
    GOAWAY,
    connect,
    frame,
    framed,
    recv_exactly,
    request_headers,
)
from tests.support import serve


async def test_many_streams_and_posts_on_one_connection_all_get_every_message_in_order() -> None:
    # One channel: the 20 streams' DATA frames, the posts' replies and their header
    # blocks (HPACK: in the order they were encoded) share one connection.
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        calls = [stub.StreamRoom(pb.RoomRequest(roomId=f"r{i % 4}")) for i in range(20)]
        for call in calls:
            await call.initial_metadata()
        sent: dict[str, list[str]] = {f"r{i}": [] for i in range(4)}

        async def poster(room: str) -> None:
            for n in range(100):
                sent[room].append(await post(stub, room, f"{room}-{n}"))

        readers = [asyncio.ensure_future(read(call, 100, timeout=20)) for call in calls]
        await asyncio.gather(*(poster(room) for room in sent))
        for i, got in enumerate(await asyncio.gather(*readers)):
            assert [m.id for m in got] == sent[f"r{i % 4}"]
        for call in calls:
            call.cancel()


async def test_a_client_may_hold_more_than_100_streams_on_one_connection() -> None:
    # h2 alone would announce MAX_CONCURRENT_STREAMS 100: the 101st call would wait forever.
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        calls = [stub.StreamRoom(pb.RoomRequest(roomId=f"room-{i}")) for i in range(150)]
        await asyncio.wait_for(asyncio.gather(*(call.initial_metadata() for call in calls)), 10)
        ids = [await post(stub, f"room-{i}", "hello") for i in range(150)]
        got = await asyncio.gather(*(read(call, 1) for call in calls))
        assert [m[0].id for m in got] == ids
        for call in calls:
            call.cancel()


async def test_messages_larger_than_a_frame_and_a_small_window_arrive_whole() -> None:
    # 4,095 four-byte characters and a digit: each message is over the 16 KiB HTTP/2 frame, and a
    # client window of 64 KiB holds three of them, so most go the flow-controlled way.
    text = "\U0001f600" * 4096
    small_window = [("grpc.http2.lookahead_bytes", 65_535), ("grpc.http2.bdp_probe", 0)]
    async with serve("grpc") as server, room_stub(server.url("grpc"), small_window) as stub:
        call = stub.StreamRoom(pb.RoomRequest(roomId="big"))
        await call.initial_metadata()
        ids = [await post(stub, "big", f"{n % 10}{text[1:]}") for n in range(30)]
        got = await read(call, 30, timeout=20)
        assert [m.id for m in got] == ids
        assert all(m.text == f"{n % 10}{text[1:]}" for n, m in enumerate(got))
        call.cancel()


async def test_a_flood_of_messages_reaches_a_reading_client_with_no_goaway() -> None:
    # The client's BDP pings come as often as data does: they must not count as strikes.
    async with (
        serve("grpc", service_settings=ServiceSettings(history=10)) as server,
        room_stub(server.url("grpc")) as stub,
    ):
        call = stub.StreamRoom(pb.RoomRequest(roomId="flood"))
        await call.initial_metadata()
        reader = asyncio.ensure_future(read(call, 2000, timeout=30))
        ids = []
        for n in range(0, 2000, 20):
            ids += await asyncio.gather(*(post(stub, "flood", f"m{n + k}") for k in range(20)))
        got = await reader
        assert sorted(m.id for m in got) == sorted(ids) and len({m.id for m in got}) == 2000
        assert await stub.GetRoom(pb.RoomRequest(roomId="flood"))  # the connection is still up
        call.cancel()


def _post_claiming(url: str, claimed: int) -> dict[str, str]:
    """PostToRoom by hand with a length prefix of `claimed` bytes and 5 bytes of body,
    the stream left open: answers the headers of the block that carries grpc-status."""
    sock = connect(url)
    decoder = hpack.Decoder()
    try:
        headers = request_headers("/message.Room/PostToRoom")
        body = b"\x00" + struct.pack(">I", claimed) + b"hello"  # a prefix that lies
        sock.sendall(frame(1, 4, 1, headers) + frame(0, 0, 1, body))
        while True:
            head = recv_exactly(sock, 9)
            kind, payload = head[3], recv_exactly(sock, int.from_bytes(head[:3], "big"))
            if kind == 1:  # HEADERS (the server sends no padding or priority)
                block = {str(k): str(v) for k, v in decoder.decode(payload)}
                if "grpc-status" in block:
                    return block
    finally:
        sock.close()


async def test_a_request_claiming_4_gib_is_refused_from_its_prefix_without_waiting_for_it() -> None:
    async with serve("grpc") as server:
        answer = await asyncio.wait_for(asyncio.to_thread(_post_claiming, server.url("grpc"), 2**32 - 1), 5)
        assert answer["grpc-status"] == "8"  # RESOURCE_EXHAUSTED
        assert "4294967295 bytes" in answer["grpc-message"].replace("%20", " ")
        async with room_stub(server.url("grpc")) as stub:  # and the server serves others as before
            assert (await stub.GetRoom(pb.RoomRequest(roomId="r"))).success


def _rapid_reset(url: str, streams: int) -> bytes | None:
    """Opens StreamRoom and cancels it at once (HEADERS, DATA, RST_STREAM), `streams`
    times, in bursts of 300, as the HTTP/2 "rapid reset" attack does: answers the debug
    data of the GOAWAY the server sends, or None if it sends none."""
    sock = connect(url)
    headers = request_headers("/message.Room/StreamRoom")
    request = framed(pb.RoomRequest(roomId="victim").SerializeToString())
    cancel = struct.pack(">I", 8)  # RST_STREAM CANCEL
    try:
        for first in range(1, 2 * streams, 600):  # a burst small enough for the socket buffers
            sock.sendall(
                b"".join(
                    frame(1, 4, n, headers) + frame(0, 1, n, request) + frame(3, 0, n, cancel)
                    for n in range(first, min(first + 600, 2 * streams), 2)
                )
            )
            sock.settimeout(0.5)
            try:
                while True:  # what the server says until it has nothing more to say
                    head = recv_exactly(sock, 9)
                    payload = recv_exactly(sock, int.from_bytes(head[:3], "big"))
                    if head[3] == GOAWAY:  # last stream id, error code, debug data
                        assert int.from_bytes(payload[4:8], "big") == ENHANCE_YOUR_CALM
                        return payload[8:]
            except TimeoutError:
                continue
        return None
    finally:
        sock.close()


async def test_a_client_cancelling_streams_as_fast_as_it_can_gets_goaway_and_others_are_served() -> None:
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        attack = asyncio.ensure_future(asyncio.to_thread(_rapid_reset, server.url("grpc"), 5_000))
        started = asyncio.get_running_loop().time()
        while not attack.done():  # the others' calls go on being answered meanwhile
            await stub.GetRoom(pb.RoomRequest(roomId="other"), timeout=2)
        assert await attack == b"too_many_resets"
        assert asyncio.get_running_loop().time() - started < 5
