"""The HTTP connection cap, in-process with the cap set just above what is open: a connection
past it is answered 503 and closed in order, whatever it sends (or if it sends nothing)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import pytest

from roomchat.adapters.http import guard
from roomchat.adapters.http.capacity import CONNECTIONS
from tests.limits.clients import Connection
from tests.support import serve

FULL = {"code": 503, "message": "the server has too many open connections; try again shortly"}


@contextlib.asynccontextmanager
async def cap_at_one_open(base: str) -> AsyncIterator[None]:
    """One connection open (so the cap is not 0, which is no cap) and the cap there."""
    held = await Connection.open(base)
    assert (await held.request("GET", "/healthz")).status == 200
    saved = CONNECTIONS.limit
    CONNECTIONS.limit = CONNECTIONS.open
    try:
        yield
    finally:
        CONNECTIONS.limit = saved
        held.close()


async def read_answer(connection: Connection) -> tuple[bytes, bool]:
    """Everything the server sends until it closes, and whether it closed in order (no reset)."""
    try:
        return await asyncio.wait_for(connection.reader.read(), 5), True
    except ConnectionResetError:
        return b"", False


async def test_a_connection_that_sends_nothing_is_answered_503_after_refuse_wait() -> None:
    async with serve("rest") as server:
        async with cap_at_one_open(server.url()):
            connection = await Connection.open(server.url())
            started = time.monotonic()
            answer, in_order = await read_answer(connection)
            waited = time.monotonic() - started
            connection.close()
        assert answer.startswith(b"HTTP/1.1 503 ") and answer.endswith(b'try again shortly"}')
        assert in_order
        assert guard.REFUSE_WAIT - 0.1 <= waited < guard.REFUSE_WAIT + 2


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            [
                b"POST /api/room/r HTTP/1.1\r\nhost: x\r\ncontent-length: 30\r\n\r\n",
                b'{"userId":"a","text":"late"}  ',
            ],
            id="body-later",
        ),
        pytest.param(
            [
                b"GET /api/ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
                b"sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            ],
            id="upgrade",
        ),
    ],
)
async def test_past_the_cap_a_request_is_read_then_answered_503_and_never_reaches_the_app(
    request_bytes: list[bytes],
) -> None:
    async with serve("rest") as server:
        async with cap_at_one_open(server.url()):
            connection = await Connection.open(server.url())
            for piece in request_bytes:
                connection.writer.write(piece)
                await connection.writer.drain()
                await asyncio.sleep(0.05)  # the body after the head, as a slow client sends it
            answer, in_order = await read_answer(connection)
            connection.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 ") and b"connection: close" in head
        assert json.loads(body) == FULL
        assert in_order
        assert (await server.service.history("r")) == []  # nothing was posted
