"""Reading a request is bounded in time and size; errors on the wire are the contract's JSON.

Real servers on free ports, raw sockets for what no HTTP client would send. The
timeouts are shortened to TIMEOUT for these tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from roomchat.adapters import AdapterSettings
from roomchat.adapters.http import guard as http_guard
from roomchat.adapters.http.server import serve_asgi
from tests.support import serve, stream

DEFAULTS = (http_guard.HEAD_TIMEOUT, http_guard.BODY_TIMEOUT, http_guard.HEAD_LIMIT)
TIMEOUT = 0.5  # seconds: HEAD_TIMEOUT and BODY_TIMEOUT in these tests
PATIENCE = 10.0  # seconds to wait for an answer that should come after TIMEOUT


@pytest.fixture(autouse=True)
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_guard, "HEAD_TIMEOUT", TIMEOUT)
    monkeypatch.setattr(http_guard, "BODY_TIMEOUT", TIMEOUT)


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with serve("rest") as server:
        yield server.url()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers["content-type"] == "application/json", self.headers
        return json.loads(self.body)


class Conn:
    """One raw TCP connection to the server.

    Plain socket calls, not asyncio streams: those drop a response already received
    once a write fails, and a server refusing a request closes while the client sends.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def answer(self, timeout: float = PATIENCE) -> Answer:
        """The next response, which must have a Content-Length unless it is interim (1xx)."""
        return await asyncio.wait_for(self._answer(), timeout)

    async def _answer(self) -> Answer:
        while b"\r\n\r\n" not in self.buffer:
            await self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"]) if not status_line.startswith("HTTP/1.1 1") else 0
        while len(self.buffer) < length:
            await self._receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Answer(int(status_line.split()[1]), headers, body)

    async def _receive(self) -> None:
        data = await self.loop.sock_recv(self.sock, 65536)
        if not data:
            raise EOFError(f"closed by the server after {self.buffer!r}")
        self.buffer += data

    async def closed(self, timeout: float = PATIENCE) -> bool:
        """Whether the server closes the connection, sending nothing more, within `timeout`."""
        try:
            data = await asyncio.wait_for(self.loop.sock_recv(self.sock, 65536), timeout)
        except ConnectionResetError:
            data = b""
        return not data and not self.buffer


@contextlib.asynccontextmanager
async def connect(base: str) -> AsyncIterator[Conn]:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as sock:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        yield Conn(sock)


@contextlib.asynccontextmanager
async def serve_app(app: Any) -> AsyncIterator[str]:
    """Any ASGI app, served as the rest and html adapters serve theirs."""
    stopping = asyncio.Event()
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    serving = asyncio.ensure_future(serve_asgi(app, AdapterSettings(), listening.set_result, stopping))
    try:
        yield await asyncio.wait_for(listening, PATIENCE)
    finally:
        stopping.set()
        await asyncio.wait_for(serving, PATIENCE)


async def assert_refused(conn: Conn, status: int, word: str) -> None:
    answer = await conn.answer()
    assert answer.status == status, answer
    assert answer.json() == {"code": status, "message": answer.json()["message"]}
    assert word in answer.json()["message"]
    assert answer.headers["connection"] == "close"
    assert await conn.closed()


# Timeouts


async def test_a_connection_that_sends_nothing_gets_408_and_is_closed(base: str) -> None:
    async with connect(base) as conn:
        started = time.monotonic()
        await assert_refused(conn, 408, "headers")
        assert time.monotonic() - started >= TIMEOUT * 0.9


async def test_headers_trickling_in_get_408_once_the_head_timeout_is_up(base: str) -> None:
    async with connect(base) as conn:
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

        async def trickle() -> None:  # progress does not extend the head's deadline
            with contextlib.suppress(OSError):
                while True:
                    await conn.send(b"X-Slow: 1\r\n")
                    await asyncio.sleep(TIMEOUT / 5)

        trickling = asyncio.ensure_future(trickle())
        try:
            await assert_refused(conn, 408, "headers")
        finally:
            trickling.cancel()


async def test_a_stalled_body_gets_408_and_nothing_is_posted(
    base: str, client: httpx.AsyncClient
) -> None:
    async with connect(base) as conn:
        await conn.send(b"POST /api/room/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        await assert_refused(conn, 408, "body")
    assert (await client.get(f"{base}/api/room/stalled/messages")).json() == {"messages": []}


async def test_a_body_that_keeps_coming_may_take_longer_than_the_timeout(base: str) -> None:
    body = b'{"userId": "ann", "text": "%s"}' % (b"x" * 30)
    async with connect(base) as conn:
        await conn.send(b"POST /api/room/slow HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        started = time.monotonic()
        for i in range(0, len(body), 4):
            await conn.send(body[i : i + 4])
            await asyncio.sleep(TIMEOUT / 5)
        answer = await conn.answer()
        assert answer.status == 201, answer
        assert time.monotonic() - started > 2 * TIMEOUT


async def test_a_body_is_not_timed_while_the_server_is_not_reading_it() -> None:
    async def slow_reader(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(3 * TIMEOUT)  # meanwhile uvicorn stops reading: the body is past its high water
        size, more = 0, True
        while more:
            message = await receive()
            size, more = size + len(message.get("body", b"")), message.get("more_body", False)
        body = json.dumps({"read": size}).encode()
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    size = 256 * 1024
    async with serve_app(slow_reader) as url, connect(url) as conn:
        await conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
        answer = await conn.answer()
        assert (answer.status, json.loads(answer.body)) == (200, {"read": size})


async def test_a_stalled_body_after_the_response_only_closes(base: str) -> None:
    async with connect(base) as conn:  # the app answers 404 without reading the body
        await conn.send(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        assert (await conn.answer()).status == 404
        assert await conn.closed()  # and no 408 after the 404


async def test_idle_time_between_requests_is_not_a_head_timeout(base: str) -> None:
    async with connect(base) as conn:
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await conn.answer()).status == 200
        await asyncio.sleep(2 * TIMEOUT)  # uvicorn's keep-alive timeout (30 s) governs this
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await conn.answer()).status == 200


async def test_an_idle_event_stream_outlives_the_timeouts(base: str, client: httpx.AsyncClient) -> None:
    async with stream(client, f"{base}/api/stream/quiet") as sse:
        assert await sse.comment() == "connected"
        await asyncio.sleep(3 * TIMEOUT)
        posted = await client.post(f"{base}/api/room/quiet", json={"userId": "ann", "text": "late"})
        [event] = await sse.messages(1)
        assert event.json() == posted.json()["message"]


# Size of the head


async def test_a_huge_header_gets_431_before_it_is_read(base: str) -> None:
    total = 20 * 1024 * 1024
    sent = 0
    async with connect(base) as conn:

        async def send_header() -> None:
            nonlocal sent
            await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            with contextlib.suppress(OSError):
                while sent < total:
                    await conn.send(b"a" * 65536)
                    sent += 65536
                await conn.send(b"\r\n\r\n")

        sending = asyncio.ensure_future(send_header())
        try:
            await assert_refused(conn, 431, "too large")
            await asyncio.wait_for(sending, PATIENCE)
        finally:
            sending.cancel()
    assert sent < total // 2, f"the server read {sent} bytes of one header"


async def test_a_hundred_thousand_headers_get_431(base: str) -> None:
    async with connect(base) as conn:
        with contextlib.suppress(OSError):
            await conn.send(b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 100_000 + b"\r\n")
        await assert_refused(conn, 431, "too large")


async def test_a_pipelined_head_is_charged_only_for_its_own_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_guard, "HEAD_LIMIT", 1024)
    body = b'{"userId": "ann", "text": "%s"}' % (b"x" * 900)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n" % (b"p" * 900)
    async with serve("rest") as server, connect(server.url()) as conn:
        await conn.send(
            b"POST /api/room/c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n"
            % len(body)
        )
        assert (await conn.answer()).status == 100  # the server has read the head, and reads the body
        await conn.send(body + head[:500])  # a read that starts in a body and ends inside the next head
        assert (await conn.answer()).status == 201
        await conn.send(head[500:])
        assert (await conn.answer()).status == 200


async def test_huge_trailers_get_431_before_they_are_read(base: str, client: httpx.AsyncClient) -> None:
    body = b'{"userId": "ann", "text": "hi"}'
    async with connect(base) as conn:
        with contextlib.suppress(OSError):
            await conn.send(
                b"POST /api/room/trailers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"%x\r\n%s\r\n0\r\nX-Big: %s\r\n\r\n" % (len(body), body, b"a" * 1024 * 1024)
            )
        await assert_refused(conn, 431, "too large")
    assert (await client.get(f"{base}/api/room/trailers/messages")).json() == {"messages": []}


@pytest.mark.parametrize(("size", "status"), [(1024, 200), (1025, 431)])
async def test_the_head_limit_is_exact(monkeypatch: pytest.MonkeyPatch, size: int, status: int) -> None:
    monkeypatch.setattr(http_guard, "HEAD_LIMIT", 1024)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n"
    head = head.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (size - len(head)))
    assert len(head) == size
    async with serve("rest") as server, connect(server.url()) as conn:
        await conn.send(head)
        assert (await conn.answer()).status == status


async def test_a_large_head_within_the_limit_is_served(base: str) -> None:
    async with connect(base) as conn:
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\n")
        assert (await conn.answer()).status == 200


# Malformed requests


MALFORMED = {
    "content-length not a number": b"POST /api/room/lobby HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "raw byte in path": b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    "invalid request line": b"NONSENSE\r\n\r\n",
    "control character in header": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n",
    "bad chunk size": b"POST /api/room/lobby HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
}


@pytest.mark.parametrize("adapter", ["rest", "html"])
@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_request_gets_a_json_400(adapter: str, request_bytes: bytes) -> None:
    async with serve(adapter) as server, connect(server.url(adapter)) as conn:
        await conn.send(request_bytes)
        await assert_refused(conn, 400, "malformed HTTP request")


# What must keep working


async def test_pipelined_requests_are_all_answered_in_order(base: str) -> None:
    body = b'{"userId": "ann", "text": "piped"}'
    async with connect(base) as conn:
        await conn.send(
            b"GET /api/room/piped HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /api/room/piped HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            b"GET /api/room/piped/messages HTTP/1.1\r\nHost: x\r\n\r\n" % (len(body), body)
        )
        info, posted, page = [await conn.answer() for _ in range(3)]
        assert info.json()["lastId"] is None
        assert posted.status == 201
        assert [m["text"] for m in page.json()["messages"]] == ["piped"]


async def test_a_pipelined_request_split_across_writes_is_answered(base: str) -> None:
    async with connect(base) as conn:
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
        assert (await conn.answer()).status == 200
        await conn.send(b"st: x\r\n\r\n")
        assert (await conn.answer()).status == 200


async def test_a_partial_pipelined_request_times_out_on_its_own(base: str) -> None:
    async with connect(base) as conn:
        await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
        assert (await conn.answer()).status == 200
        await assert_refused(conn, 408, "headers")


def test_the_documented_bounds_are_the_real_ones() -> None:
    head_timeout, body_timeout, head_limit = DEFAULTS
    docs = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    section = docs.split("## Reading requests")[1].split("\n## ")[0]
    assert head_timeout == body_timeout == 10
    assert "within 10 seconds" in section
    assert "more than 10 seconds" in section
    assert f"at most {head_limit // 1024} KiB" in section
