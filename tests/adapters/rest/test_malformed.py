"""No malformed input of the contract's table gets a 500, a traceback or a hang."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import serve, stream

LOBBY = "/api/room/lobby"
BIG = 64 * 1024 + 1

CASES: list[tuple[str, str, str, bytes | None, dict[str, str], int, str]] = [
    # (name, method, path, body, headers, status, word in message)
    ("not json", "POST", LOBBY, b"not json", {}, 400, "JSON"),
    ("json array", "POST", LOBBY, b"[1, 2]", {}, 400, "object"),
    ("json string", "POST", LOBBY, b'"text"', {}, 400, "object"),
    ("empty body", "POST", LOBBY, b"", {}, 400, "JSON"),
    ("invalid utf-8", "POST", LOBBY, b'{"userId": "\xff\xfe"}', {}, 400, "JSON"),
    ("NaN is not JSON", "POST", LOBBY, b'{"userId": "a", "text": "x", "n": NaN}', {}, 400, "JSON"),
    ("Infinity is not JSON", "POST", LOBBY, b'{"userId": "a", "text": "x", "n": -Infinity}', {}, 400, "JSON"),
    ("utf-16 body", "POST", LOBBY, '{"userId": "a", "text": "x"}'.encode("utf-16"), {}, 400, "JSON"),
    ("utf-8 with BOM", "POST", LOBBY, b'\xef\xbb\xbf{"userId": "a", "text": "x"}', {}, 400, "JSON"),
    ("deep nesting", "POST", LOBBY, b"[" * 30_000 + b"]" * 30_000, {}, 400, "JSON"),
    ("user not a string", "POST", LOBBY, b'{"userId": 5, "text": "x"}', {}, 422, "userId"),
    ("no user", "POST", LOBBY, b'{"text": "x"}', {}, 422, "userId"),
    ("blank user", "POST", LOBBY, b'{"userId": "   ", "text": "x"}', {}, 422, "userId"),
    ("long user", "POST", LOBBY, b'{"userId": "%s", "text": "x"}' % (b"u" * 65), {}, 422, "userId"),
    ("control in user", "POST", LOBBY, b'{"userId": "a\\u0007", "text": "x"}', {}, 422, "userId"),
    ("no text", "POST", LOBBY, b'{"userId": "ann"}', {}, 422, "text"),
    ("null text", "POST", LOBBY, b'{"userId": "ann", "text": null}', {}, 422, "text"),
    ("blank text", "POST", LOBBY, b'{"userId": "ann", "text": " \\n "}', {}, 422, "text"),
    ("long text", "POST", LOBBY, b'{"userId": "ann", "text": "%s"}' % (b"x" * 4097), {}, 422, "text"),
    ("nul in text", "POST", LOBBY, b'{"userId": "ann", "text": "a\\u0000b"}', {}, 422, "text"),
    ("surrogate user", "POST", LOBBY, b'{"userId": "a\\udc00", "text": "x"}', {}, 422, "Unicode"),
    ("lone surrogate", "POST", LOBBY, b'{"userId": "ann", "text": "\\ud800"}', {}, 422, "text"),
    ("bad room", "POST", "/api/room/bad%20room", b'{"userId": "a", "text": "x"}', {}, 422, "roomId"),
    ("unicode room", "POST", "/api/room/caf%C3%A9", b'{"userId": "a", "text": "x"}', {}, 422, "roomId"),
    ("long room", "POST", "/api/room/" + "r" * 65, b'{"userId": "a", "text": "x"}', {}, 422, "roomId"),
    ("body too big", "POST", LOBBY, b"{" + b" " * BIG + b"}", {}, 413, "body"),
    ("limit not a number", "GET", "/api/room/lobby/messages?limit=ten", None, {}, 422, "limit"),
    ("limit in other digits", "GET", "/api/room/lobby/messages?limit=%C2%B2", None, {}, 422, "limit"),
    ("limit in arabic digits", "GET", "/api/room/lobby/messages?limit=%D9%A3", None, {}, 422, "limit"),
    ("after in other digits", "GET", "/api/room/lobby/messages?after=%C2%B2-0", None, {}, 422, "after"),
    ("before in other digits", "GET", "/api/room/lobby/messages?before=1-%C2%B2", None, {}, 422, "before"),
    ("limit of 4301 digits", "GET", "/api/room/lobby/messages?limit=" + "9" * 4301, None, {}, 422, "limit"),
    ("limit of 4301 zeros", "GET", "/api/room/lobby/messages?limit=" + "0" * 4301, None, {}, 422, "limit"),
    ("rooms limit of 4301 digits", "GET", "/api/rooms?limit=" + "9" * 4301, None, {}, 422, "limit"),
    ("limit zero", "GET", "/api/room/lobby/messages?limit=0", None, {}, 422, "limit"),
    ("limit too big", "GET", "/api/room/lobby/messages?limit=1001", None, {}, 422, "limit"),
    ("after not an id", "GET", "/api/room/lobby/messages?after=zzz", None, {}, 422, "after"),
    ("bad room history", "GET", "/api/room/a%20b/messages", None, {}, 422, "roomId"),
    ("bad room stream", "GET", "/api/stream/a%00b", None, {}, 422, "roomId"),
    ("bad room info", "GET", "/api/room/a:b", None, {}, 422, "roomId"),
    ("bad room delete", "DELETE", "/api/room/a%20b", None, {}, 422, "roomId"),
    ("wrong method", "PUT", LOBBY, b"{}", {}, 405, "Method"),
    ("unknown route", "GET", "/api/nothing", None, {}, 404, ""),
]


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with serve("rest") as server:
        yield server.url()


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "word"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_bad_input_gets_a_clear_json_error(
    client: httpx.AsyncClient,
    base: str,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
    word: str,
) -> None:
    r = await client.request(method, base + path, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()
    assert error["code"] == status
    assert word in error["message"]
    assert "Traceback" not in r.text
    if status == 405:
        assert "POST" in r.headers["allow"]


async def test_an_oversized_chunked_body_is_refused_before_it_is_read_whole(
    client: httpx.AsyncClient, base: str
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1024):  # up to 64 MiB, far more than the limit
            sent += 65536
            yield b" " * 65536

    try:
        r = await client.post(base + LOBBY, content=chunks())
        assert r.status_code == 413
        assert r.json()["code"] == 413
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the server answered and closed while we were still sending
    assert sent < 64 * 1024 * 1024


async def test_garbage_resume_ids_get_a_gap_not_an_error(client: httpx.AsyncClient, base: str) -> None:
    await client.post(base + LOBBY, json={"userId": "a", "text": "kept"})
    for garbage in ("nonsense", "99999999999999-0", "-", "1-2-3", "x" * 500, "9" * 4301, "9" * 4301 + "-0"):
        async with stream(client, f"{base}/api/stream/lobby", {"Last-Event-ID": garbage}) as sse:
            gap = await sse.next()
            assert gap is not None and gap.event == "gap", garbage[:20]
            assert gap.json()["lastEventId"] == garbage
            [kept] = await sse.messages(1)
            assert kept.json()["text"] == "kept"


async def test_bad_input_does_not_disturb_other_users(client: httpx.AsyncClient, base: str) -> None:
    async with stream(client, f"{base}/api/stream/lobby") as sse:
        good = await client.post(base + LOBBY, json={"userId": "ann", "text": "before"})
        for case in CASES:
            await client.request(case[1], base + case[2], content=case[3])
        after = await client.post(base + LOBBY, json={"userId": "ann", "text": "after"})
        got = await sse.messages(2)
        assert [e.json() for e in got] == [good.json()["message"], after.json()["message"]]
        page = (await client.get(base + "/api/room/lobby/messages")).json()["messages"]
        assert [m["text"] for m in page] == ["before", "after"]


async def test_a_client_that_sends_half_a_request_does_not_hang_the_server(base: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(b'POST /api/room/lobby HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"userId"')
    await writer.drain()
    writer.close()  # the server must simply drop it
    async with httpx.AsyncClient() as c:
        r = await c.post(base + LOBBY, json={"userId": "a", "text": "still fine"})
        assert r.status_code == 201


@pytest.mark.parametrize("length", ["9" * 4301, "0" * 4300 + "99999"])
async def test_a_content_length_of_4301_digits_is_a_clear_error(base: str, length: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST /api/room/lobby HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
    answer = await asyncio.wait_for(reader.read(), 5)  # answered, then closed: nothing left to read
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert status in (400, 413), head  # the parser's overflow, or ours: over the body limit
    assert b'"code":%d' % status in body
