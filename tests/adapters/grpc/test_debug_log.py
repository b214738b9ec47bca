"""`--log-level debug` under `--auth jwt`: no library that sees request headers logs a token.

The redaction filter (roomchat.logs) finds a token in a log line by its shape;
a header block that arrived Huffman-coded (as grpc core, grpc-go and h2 send
it) shows the token only as bytes it cannot recognise, so those libraries must
not log at debug at all."""

from __future__ import annotations

import asyncio

import hpack
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from roomchat.adapters.grpc.generated import message_pb2 as pb
from tests.adapters.grpc.client import room_stub
from tests.adapters.grpc.raw import HEADERS, connect, frame, framed, next_frame
from tests.cli.test_serve import run_cli
from tests.support import roomchat_process

SECRET = "grpc-debug-log-secret-of-32-bytes!!"


def huffman_call(url: str, token: str) -> int:
    """GetRoom over a raw connection, its headers HPACK-encoded with Huffman coding (as
    grpc clients send them); answers the type of the server's first stream frame."""
    headers = [
        (":method", "POST"), (":scheme", "http"), (":path", "/message.Room/GetRoom"),
        (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers"),
        ("authorization", f"Bearer {token}"),
    ]  # fmt: skip
    block = hpack.Encoder().encode(headers, huffman=True)
    assert token.encode() not in block  # Huffman-coded: the token's bytes are not in it
    request = framed(pb.RoomRequest(roomId="team-a").SerializeToString())
    with connect(url) as sock:
        sock.sendall(frame(HEADERS, 4, 1, block) + frame(0, 1, 1, request))
        kind = -1
        while kind not in (0, HEADERS):
            kind, _, _ = next_frame(sock)
        return kind


async def test_a_huffman_coded_token_never_reaches_the_debug_log() -> None:
    minted = run_cli("token", "--sub", "ann", "--jwt-key", SECRET, "--rooms", "team-*", "--ttl", "10m")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    args = ("--adapter", "grpc", "--port", "grpc=0", "--auth", "jwt", "--log-level", "debug")
    with roomchat_process(*args, env={"ROOMCHAT_JWT_KEY": SECRET}) as server:
        url = server.urls["grpc"]
        assert await asyncio.to_thread(huffman_call, url, token) == HEADERS
        async with room_stub(url) as stub:  # grpc core's own encoding too
            bearer = [("authorization", f"Bearer {token}")]
            assert (await stub.GetRoom(pb.RoomRequest(roomId="team-a"), metadata=bearer)).success
        assert server.terminate() == 0
        assert server.proc.stderr is not None and server.proc.stdout is not None
        logged = server.proc.stderr.read() + server.proc.stdout.read()
    assert "DEBUG" in logged  # the server did log at debug...
    for part in token.split("."):  # ...and no part of the token, in any encoding
        assert part not in logged
    coded = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(f"Bearer {token}".encode())
    assert repr(coded)[2:40] not in logged  # as hpack's "Decoding b'...'" line would show it
