"""roomchat.js, the JavaScript client (contract: Clients → JavaScript), in Chromium against
real servers: the module as the html adapter serves it, imported by a page of that server."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, WebSocketRoute

from roomchat.adapters.html.pages import STATIC
from roomchat.bootstrap import ServiceSettings
from roomchat.tokens import JwtAuthenticator, mint
from tests.backends.redis_server import free_port
from tests.support import serve

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLIENT = Path(__file__).parents[3] / "clients" / "js"
SECRET = "a-roomchat-js-test-secret-of-32-bytes"


async def app_page(browser: Browser, base: str) -> Page:
    """A page of the server's origin (and its strict CSP) that has imported roomchat.js as `rc`,
    and keeps what the clients it makes see in `events` and `states`."""
    page = await (await browser.new_context()).new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    await page.goto(base + "/")
    await page.evaluate(
        """async () => {
            window.rc = await import("/static/roomchat.js");
            window.events = [];
            window.states = [];
            window.make = (options = {}) => {
                const client = new rc.RoomchatClient(location.origin, options);
                client.addEventListener("state", (e) => states.push(e.detail));
                return client;
            };
            window.record = (event) => events.push(event);
        }"""
    )
    assert problems == []
    return page


async def until(page: Page, expression: str, within: float = 10.0) -> Any:
    """The value of `expression` in the page once it is truthy (polled: the page's CSP
    refuses the eval that Playwright's own wait_for_function polls with)."""
    deadline = time.monotonic() + within
    while not (value := await page.evaluate(expression)):
        assert time.monotonic() < deadline, f"still false after {within} s: {expression}"
        await asyncio.sleep(0.02)
    return value


async def texts_seen(page: Page, count: int) -> list[str]:
    await until(page, f"events.filter((e) => e.type === 'message').length >= {count}")
    found: list[str] = await page.evaluate(
        "events.filter((e) => e.type === 'message').map((e) => e.message.text)"
    )
    return found


async def test_subscribe_resumes_after_last_id_and_says_gap_for_an_id_history_lost(browser: Browser) -> None:
    async with serve("html") as server:
        first = await server.service.submit("r", "bob", "one")
        await server.service.submit("r", "bob", "two")
        page = await app_page(browser, server.url("html"))
        await page.evaluate(
            "async (lastId) => { window.client = make({userId: 'ann'});"
            " await client.subscribe('r', {lastId, onEvent: record}); }",
            first.id,
        )
        assert await texts_seen(page, 1) == ["two"]
        await page.evaluate(
            "async () => { await client.subscribe('s', {lastId: '1-0', onEvent: record}); }"
        )
        await server.service.submit("s", "bob", "three")
        await until(page, "events.some((e) => e.message?.text === 'three')")
        s_events = await page.evaluate("events.filter((e) => e.roomId === 's' || e.message?.roomId === 's')")
        assert [e["type"] for e in s_events] == ["subscribed", "gap", "message"]
        assert s_events[1]["lastEventId"] == "1-0"
        assert await page.evaluate("client.connected") is True
        assert await page.evaluate("states") == ["connected"]
        # The url's trailing slash and path are the adapter's origin all the same.
        assert await page.evaluate("new rc.RoomchatClient(location.origin + '/').close()") is None


async def test_publish_resolves_with_the_stored_message_and_a_reused_key_stores_once(
    browser: Browser,
) -> None:
    settings = ServiceSettings(max_text=10)
    async with serve("html", service_settings=settings) as server:
        page = await app_page(browser, server.url("html"))
        sent: dict[str, Any] = await page.evaluate(
            """async () => {
                window.client = make({userId: 'ann'});
                const first = await client.publish('r', 'hi', {key: 'k-1'});
                const again = await client.publish('r', 'hi', {key: 'k-1'});
                let refused = null;
                try { await client.publish('r', 'x'.repeat(11)); } catch (e) {
                    const isError = e instanceof rc.RoomchatError;
                    refused = {name: e.name, code: e.code, message: e.message, isError};
                }
                return {first, again, refused};
            }"""
        )
        assert sent["first"]["text"] == "hi" and sent["first"]["userId"] == "ann"
        assert sent["again"] == sent["first"]
        assert sent["refused"] == {
            "name": "RoomchatError",
            "code": 422,
            "message": "text must be at most 10 characters",
            "isError": True,
        }
        assert [m.text for m in await server.service.history("r")] == ["hi"]


async def test_a_deleted_room_ends_its_subscription_and_the_connection_stays(browser: Browser) -> None:
    async with serve("html") as server:
        base = server.url("html")
        page = await app_page(browser, base)
        await page.evaluate(
            """async () => {
                window.client = make();
                window.sub = await client.subscribe('gone', {onEvent: record});
                window.other = await client.subscribe('kept', {onEvent: record});
                sub.ended.then((why) => { window.why = why; });
            }"""
        )
        async with httpx.AsyncClient() as http:
            assert (await http.delete(f"{base}/room/gone")).status_code == 200
        await until(page, "window.why === 'deleted'")
        await server.service.submit("gone", "bob", "a new room of the same name")
        await server.service.submit("kept", "bob", "still here")
        assert await texts_seen(page, 1) == ["still here"]
        assert [e["type"] for e in await page.evaluate("events")] == [
            "subscribed", "subscribed", "deleted", "message"
        ]
        assert await page.evaluate("client.connected") is True


async def test_a_lagged_subscription_resumes_by_itself_and_loses_nothing(browser: Browser) -> None:
    async with serve("html", service_settings=ServiceSettings(buffer=1)) as server:
        page = await app_page(browser, server.url("html"))
        await page.evaluate(
            "async () => { window.client = make(); await client.subscribe('busy', {onEvent: record}); }"
        )
        for n in range(5):  # published before the writer runs: a buffer of one overflows
            await server.service.submit("busy", "bob", f"burst {n}")
        assert await texts_seen(page, 5) == [f"burst {n}" for n in range(5)]
        assert server.service.stats().lagged >= 1
        await server.service.submit("busy", "bob", "after")
        assert await texts_seen(page, 6) == [*(f"burst {n}" for n in range(5)), "after"]


async def test_a_token_callback_is_called_again_when_the_token_expires(browser: Browser) -> None:
    settings = ServiceSettings(auth=JwtAuthenticator(SECRET))
    async with serve("html", service_settings=settings) as server:
        page = await app_page(browser, server.url("html"))
        minted: list[int] = []

        def token() -> str:
            # The first expires about 3 s from now (30 s leeway); the later ones hold.
            minted.append(1)
            if len(minted) == 1:
                return mint(SECRET, "ann", ttl=-27)
            return mint(SECRET, "ann")

        await page.expose_function("token", token)
        await page.evaluate(
            """async () => {
                window.client = make({token: () => window.token()});
                await client.subscribe('team', {onEvent: record});
            }"""
        )
        await until(page, "events.filter((e) => e.type === 'subscribed').length >= 2")
        assert len(minted) == 2  # once to connect, once more on `expired`
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{server.url('html')}/room/team",
                json={"text": "after the refresh"},
                headers={"authorization": f"Bearer {mint(SECRET, 'bob')}"},
            )
            assert r.status_code == 201
        assert await texts_seen(page, 1) == ["after the refresh"]
        stored = await page.evaluate("client.publish('team', 'as ann').then((m) => m.userId)")
        assert stored == "ann"


async def test_a_publish_waits_while_disconnected_then_times_out_and_close_ends_everything(
    browser: Browser,
) -> None:
    async with serve("html") as server:
        page = await app_page(browser, server.url("html"))
        nowhere = f"http://127.0.0.1:{free_port()}"
        started = time.monotonic()
        outcome = await page.evaluate(
            """async (nowhere) => {
                window.client = new rc.RoomchatClient(nowhere, {userId: 'ann'});
                const sub = client.subscribe('r', {onEvent: record});
                const timedOut = await client.publish('r', 'lost', {timeout: 1500}).catch((e) => e.name);
                const pending = client.publish('r', 'never sent');
                client.close();
                return {
                    timedOut,
                    state: client.state,
                    pending: await pending.catch((e) => e.message),
                    sub: await sub.catch((e) => e.message),
                    after: await client.publish('r', 'x').catch((e) => e.message),
                };
            }""",
            nowhere,
        )
        assert time.monotonic() - started >= 1.5
        assert outcome == {
            "timedOut": "TimeoutError",
            "state": "closed",
            "pending": "the client is closed",
            "sub": "subscription closed",
            "after": "the client is closed",
        }


async def test_reconnect_delays_are_jittered_first_within_1s_then_at_most_10s_apart(browser: Browser) -> None:
    async with serve("html") as server:
        page = await app_page(browser, server.url("html"))
        worst = await page.evaluate("[...Array(12).keys()].map((n) => rc.reconnectDelay(n, () => 0.999999))")
        assert worst[0] < 1000 and all(d <= 10_000 for d in worst) and worst[-1] > 9_000
        assert worst == sorted(worst)
        firsts = await page.evaluate("[...Array(1000)].map(() => rc.reconnectDelay(0))")
        assert min(firsts) < 100 and max(firsts) > 900  # spread over the whole second


async def test_the_type_declarations_declare_every_export_of_the_module() -> None:
    source = (CLIENT / "roomchat.js").read_text()
    declared = (CLIENT / "roomchat.d.ts").read_text()
    exported = set(re.findall(r"^export (?:class|function|const) (\w+)", source, re.M))
    typed = set(re.findall(r"^export declare (?:class|function|const) (\w+)", declared, re.M))
    names = {"RoomchatClient", "RoomchatError", "Subscription", "SUBPROTOCOL", "reconnectDelay"}
    assert exported == typed == names


@pytest.mark.parametrize("name", ["roomchat.js", "roomchat.d.ts"])
async def test_the_html_adapter_serves_the_client_as_it_is_in_clients_js(name: str) -> None:
    source = (CLIENT / name).read_bytes()
    assert (STATIC / name).read_bytes() == source, f"{STATIC}/{name} must link to clients/js/{name}"
    async with serve("html") as server, httpx.AsyncClient() as http:
        served = await http.get(f"{server.url('html')}/static/{name}")
        assert served.status_code == 200 and served.content == source
    if name.endswith(".js"):
        assert served.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")


async def test_a_publish_whose_ack_is_lost_is_sent_again_with_its_key_and_stored_once(
    browser: Browser,
) -> None:
    async with serve("html") as server:
        page = await app_page(browser, server.url("html"))
        publishes: list[dict[str, Any]] = []
        closing: list[asyncio.Future[None]] = []
        cut = False

        def handler(ws: WebSocketRoute) -> None:
            server_side = ws.connect_to_server()

            def from_page(message: str | bytes) -> None:
                frame = json.loads(message)
                if frame["type"] == "publish":
                    publishes.append(frame)
                server_side.send(message)

            def from_server(message: str | bytes) -> None:
                nonlocal cut
                if not cut and json.loads(message)["type"] == "ack":
                    cut = True  # stored, but the answer never arrives: the connection drops
                    closing.append(asyncio.ensure_future(ws.close(code=1011)))
                    return
                ws.send(message)

            ws.on_message(from_page)
            server_side.on_message(from_server)

        await page.route_web_socket(re.compile(r"/api/ws(\?|$)"), handler)
        stored = await page.evaluate(
            """async () => {
                window.client = make({userId: 'ann'});
                return await client.publish('r', 'once');
            }"""
        )
        assert cut and len(publishes) == 2
        assert publishes[0]["key"] == publishes[1]["key"] and len(publishes[0]["key"]) == 32
        assert await page.evaluate("states") == ["connected", "reconnecting", "connected"]
        history = await server.service.history("r")
        assert [(m.id, m.text) for m in history] == [(stored["id"], "once")]
