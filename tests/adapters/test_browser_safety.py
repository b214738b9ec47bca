"""Browser safety over real sockets on `rest` and `html` (contract: Browser safety):
what a browser on another origin may and may not do, CORS for allowed origins,
the security headers on every HTML response, and the SSE fast path left alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from roomchat.adapters.http.security import BrowserSafety, CorsOrigins, origin
from tests.support import RawStream, Running, serve

EVIL = "https://evil.example"
FRIEND = "https://friend.example"
POSTS = {"rest": "/api/room/{}", "html": "/room/{}"}


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    async with serve("rest", "html") as running:
        yield running


async def _stored(server: Running, room: str) -> list[str]:
    return [m.text for m in await server.service.history(room)]


@pytest.mark.parametrize("adapter", ["rest", "html"])
@pytest.mark.parametrize(
    "body",
    [
        {"json": {"userId": "eve", "text": "forged"}},
        {"content": b'{"userId": "eve", "text": "forged"}', "headers": {"content-type": "text/plain"}},
        {"data": {"user": "eve", "message": "forged", "userId": "eve", "text": "forged"}},
    ],
    ids=["json", "text/plain", "form"],
)
async def test_a_post_from_another_origin_is_403_and_stores_nothing(
    server: Running, client: httpx.AsyncClient, adapter: str, body: dict[str, Any]
) -> None:
    url = server.url(adapter) + POSTS[adapter].format("csrf")
    headers = {**body.pop("headers", {}), "origin": EVIL}
    r = await client.post(url, headers=headers, **body)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == 403
    assert EVIL in r.json()["message"] and "--cors-origin" in r.json()["message"]
    assert "access-control-allow-origin" not in r.headers
    # The browser's own word for it is enough, with or without Origin.
    r = await client.post(url, headers={"sec-fetch-site": "cross-site"}, **body)
    assert r.status_code == 403, r.text
    assert await _stored(server, "csrf") == []


@pytest.mark.parametrize("adapter", ["rest", "html"])
async def test_a_delete_from_another_origin_is_403_and_the_room_stays(
    server: Running, client: httpx.AsyncClient, adapter: str
) -> None:
    await server.service.submit("keep", "ann", "still here")
    url = server.url(adapter) + POSTS[adapter].format("keep")
    for headers in ({"origin": EVIL}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}):
        r = await client.delete(url, headers=headers)
        assert r.status_code == 403, (headers, r.text)
    assert await _stored(server, "keep") == ["still here"]


@pytest.mark.parametrize("adapter", ["rest", "html"])
async def test_requests_without_origin_and_from_the_server_s_own_origin_are_unaffected(
    server: Running, client: httpx.AsyncClient, adapter: str
) -> None:
    base = server.url(adapter)
    url = base + POSTS[adapter].format("own")
    plain = {"content-type": "text/plain"}
    r = await client.post(url, content=b'{"userId": "ann", "text": "curl"}', headers=plain)
    assert r.status_code == 201, r.text
    r = await client.post(url, json={"userId": "ann", "text": "page"}, headers={"origin": base})
    assert r.status_code == 201, r.text
    r = await client.post(
        url,
        json={"userId": "ann", "text": "fetch"},
        headers={"origin": EVIL, "sec-fetch-site": "same-origin"},
    )
    assert r.status_code == 201, r.text  # the browser says same-origin: a proxy rewrote the host
    # Reading is never refused: the browser itself keeps another origin from seeing the answer.
    r = await client.get(f"{server.url()}/api/room/own/messages", headers={"origin": EVIL})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    assert await _stored(server, "own") == ["curl", "page", "fetch"]
    assert (await client.delete(url, headers={"origin": base})).status_code == 200


async def test_behind_a_trusted_tls_proxy_the_page_s_https_origin_is_its_own(
    client: httpx.AsyncClient,
) -> None:
    async with serve("rest", trust_proxy=("127.0.0.1/32",)) as server:
        host = server.url().removeprefix("http://")
        proxied = {"origin": f"https://{host}", "x-forwarded-proto": "https"}
        url = f"{server.url()}/api/room/tls"
        assert (await client.post(url, json={"userId": "a", "text": "t"}, headers=proxied)).status_code == 201
        unproxied = {"origin": f"https://{host}"}
        assert (
            await client.post(url, json={"userId": "a", "text": "t"}, headers=unproxied)
        ).status_code == 403
    async with serve("rest") as server:  # X-Forwarded-Proto from anyone else is not believed
        host = server.url().removeprefix("http://")
        proxied = {"origin": f"https://{host}", "x-forwarded-proto": "https"}
        r = await client.post(
            f"{server.url()}/api/room/tls", json={"userId": "a", "text": "t"}, headers=proxied
        )
        assert r.status_code == 403


@pytest.mark.parametrize("adapter", ["rest", "html"])
async def test_an_allowed_origin_gets_cors_answers_and_may_post_and_delete(
    client: httpx.AsyncClient, adapter: str
) -> None:
    async with serve(adapter, cors_origins=(FRIEND + "/",)) as server:
        url = server.url(adapter) + POSTS[adapter].format("shared")
        preflight = {
            "origin": FRIEND,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, idempotency-key",
        }
        r = await client.options(url, headers=preflight)
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == FRIEND
        assert r.headers["access-control-allow-credentials"] == "true"
        assert {"POST", "DELETE", "GET"} <= set(r.headers["access-control-allow-methods"].split(", "))
        allowed = {h.lower() for h in r.headers["access-control-allow-headers"].split(", ")}
        assert {"authorization", "content-type", "idempotency-key", "last-event-id"} <= allowed

        r = await client.post(
            url, json={"userId": "ann", "text": "from a friend"}, headers={"origin": FRIEND}
        )
        assert r.status_code == 201, r.text
        assert r.headers["access-control-allow-origin"] == FRIEND
        assert "retry-after" in r.headers["access-control-expose-headers"].lower()
        assert "origin" in r.headers["vary"].lower()
        assert [m.text for m in await server.service.history("shared")] == ["from a friend"]

        # Anyone else gets no CORS answer at all, and no preflight.
        r = await client.options(url, headers={**preflight, "origin": EVIL})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        r = await client.post(url, json={"userId": "eve", "text": "x"}, headers={"origin": EVIL})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers

        assert (await client.delete(url, headers={"origin": FRIEND})).status_code == 200
        assert await server.service.history("shared") == []


async def test_no_cors_answers_by_default(server: Running, client: httpx.AsyncClient) -> None:
    preflight = {"origin": FRIEND, "access-control-request-method": "POST"}
    r = await client.options(f"{server.url()}/api/room/x", headers=preflight)
    assert r.status_code == 403
    assert not [name for name in r.headers if name.startswith("access-control-")]
    r = await client.get(f"{server.url()}/api/rooms", headers={"origin": FRIEND})
    assert not [name for name in r.headers if name.startswith("access-control-")]


async def test_every_html_response_sends_the_strict_headers(
    server: Running, client: httpx.AsyncClient
) -> None:
    await server.service.submit("lobby", "ann", "hi")
    html = server.url("html")
    pages = [
        f"{server.url()}/docs",
        f"{html}/",
        f"{html}/?after=lobby",
        f"{html}/room/lobby",
        f"{html}/room/bad!room",
        f"{html}/join?room=bad!",
        f"{html}/nowhere",
    ]
    for url in pages:
        r = await client.get(url, headers={"accept": "text/html"})
        assert r.headers["content-type"].startswith("text/html"), url
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, url
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, url
        assert "<script>" not in r.text and "<style>" not in r.text, url  # the policy would block them
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert r.headers["referrer-policy"] == "no-referrer", url
    for url in (f"{server.url()}/api/rooms", f"{html}/static/chat.js", f"{server.url()}/static/docs.js"):
        r = await client.get(url)
        assert r.status_code == 200, url
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert (
            "content-security-policy" not in r.headers
            or "frame-ancestors" in r.headers["content-security-policy"]
        )


@pytest.mark.parametrize(("adapter", "path"), [("rest", "/api/stream/fast"), ("html", "/stream/fast")])
async def test_event_streams_still_take_the_fast_path_with_or_without_cors(adapter: str, path: str) -> None:
    async with serve(adapter, cors_origins=(FRIEND,)) as server:
        base = server.url(adapter)
        plain = await RawStream.open(base, path)
        host = base.removeprefix("http://")
        friend = await _raw_stream(host, path, FRIEND)
        assert b"access-control-allow-origin: " + FRIEND.encode() in friend[1].lower()
        listeners = list(server.service._rooms["fast"].listeners)
        assert [listener.notify is not None for listener in listeners] == [True, True]
        await server.service.submit("fast", "ann", "both")
        events = []
        while not events:
            events += [e for e in await plain.events(budget=1) if e.event == "message"]
        assert events[0].json()["text"] == "both"
        plain.cut()
        friend[0].close()


async def _raw_stream(host: str, path: str, origin_: str) -> tuple[Any, bytes]:
    name, port = host.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(name, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin_}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return writer, head


async def test_a_stream_s_send_is_passed_through_unwrapped() -> None:
    """No wrapper between an event stream and the server: nothing per message, no frame per stream."""
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(send)

    async def send(message: Any) -> None:
        pass

    safety = BrowserSafety(app, cors=CorsOrigins((FRIEND,)), streams=("/api/stream/",))
    for path, origin_ in (("/api/stream/r", None), ("/api/stream/r", EVIL), ("/api/rooms", None)):
        headers = [(b"host", b"h")] + ([(b"origin", origin_.encode())] if origin_ else [])
        scope = {"type": "http", "method": "GET", "path": path, "headers": headers, "scheme": "http"}
        await safety(scope, None, send)
    assert seen[0] is send and seen[1] is send
    assert seen[2] is not send  # other responses get the headers added


@pytest.mark.parametrize(
    "value", ["chat.example.com", "https://chat.example.com/path", "ftp://x", "https://", "null", "*"]
)
def test_a_cors_origin_that_is_not_an_origin_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="--cors-origin"):
        origin(value)


def test_cors_origins_are_compared_as_browsers_send_them() -> None:
    assert origin("HTTPS://Chat.Example.com:443/") == "https://chat.example.com"
    assert origin("http://localhost:8000") == "http://localhost:8000"


@pytest.mark.parametrize("name", ["\u200b", "\u200b\u2060\ufeff", "ann\u202enimda", "\u2067ann\u2069"])
async def test_invisible_and_bidirectional_names_are_422_on_every_http_route(
    server: Running, client: httpx.AsyncClient, name: str
) -> None:
    r = await client.post(f"{server.url()}/api/room/names", json={"userId": name, "text": "hi"})
    assert r.status_code == 422 and "userId" in r.json()["message"], r.text
    r = await client.post(f"{server.url('html')}/room/names", data={"user": name, "message": "hi"})
    assert r.status_code == 422 and r.json()["message"].startswith("user "), r.text
    # A text may hold them: the page shows each text isolated.
    r = await client.post(f"{server.url()}/api/room/names", json={"userId": "ann", "text": f"say {name}"})
    assert r.status_code == 201, r.text
    assert await _stored(server, "names") == [f"say {name}"]


async def test_a_websocket_handshake_from_another_origin_is_refused_before_the_app() -> None:
    reached: list[str] = []
    sent: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    async def send(message: Any) -> None:
        sent.append(message)

    safety = BrowserSafety(app, cors=CorsOrigins((FRIEND,)))
    for name, value in ((b"origin", EVIL), (b"origin", FRIEND), (b"origin", "http://h"), (b"x-none", "")):
        headers = [(b"host", b"h"), (name, value.encode())]
        scope = {"type": "websocket", "path": f"/ws/{value}", "headers": headers, "scheme": "ws"}
        await safety(scope, None, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]  # the server answers the handshake 403
    assert reached == [f"/ws/{FRIEND}", "/ws/http://h", "/ws/"]
