"""The chat page in a real browser: Playwright driving the system Chromium."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Request,
    WebSocket,
    WebSocketRoute,
    expect,
)

from roomchat.bootstrap import ServiceSettings
from tests.backends.redis_server import free_port, redis_server
from tests.support import roomchat_process, serve

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c


async def open_room(browser: Browser, base: str, room: str, name: str) -> Page:
    """A fresh visitor (own storage) on a room's page, named, with the stream connected."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{base}/room/{room}")
    await page.fill("#name", name)
    await page.locator("#name").dispatch_event("change")
    await expect(page.locator("#status")).to_have_text("Connected")
    return page


async def say(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.press("#text", "Enter")


def texts(page: Page) -> Locator:
    return page.locator("#log .message .text")


async def hold_next_socket(
    page: Page, before: Callable[[], Awaitable[None]], seen: Callable[[dict[str, Any]], None] | None = None
) -> None:
    """Hold the page's next WebSocket (roomchat.js's /api/ws) until `before` has run, then let
    it through; `seen` gets each frame the page sends on it. Later sockets pass untouched."""
    used = False

    async def handler(ws: WebSocketRoute) -> None:
        nonlocal used
        if used:
            ws.connect_to_server()
            return
        used = True
        early: list[str | bytes] = []
        server: WebSocketRoute | None = None

        def from_page(message: str | bytes) -> None:
            if seen is not None:
                seen(json.loads(message))
            if server is None:
                early.append(message)
            else:
                server.send(message)

        ws.on_message(from_page)
        await before()
        server = ws.connect_to_server()
        for message in early:
            server.send(message)

    await page.route_web_socket(re.compile(r"/api/ws(\?|$)"), handler)


async def test_two_pages_in_one_room_see_each_other(browser: Browser) -> None:
    async with serve("html") as server:
        base = server.url("html")
        ann = await open_room(browser, base, "lobby", "ann")
        bob = await open_room(browser, base, "lobby", "bob")
        await expect(bob.locator("#listeners")).to_have_text("2 listening")

        await say(ann, "hello from ann")
        for page in (ann, bob):
            await expect(page.locator("#log .message")).to_have_count(1)
            await expect(page.locator("#log .message .author")).to_have_text(["ann"])
            await expect(page.locator("#log .message .text")).to_have_text(["hello from ann"])
            await expect(page.locator("#log .message time")).to_have_attribute("datetime", RFC3339)
        await expect(ann.locator("#log .message")).to_have_class("message mine")
        await expect(bob.locator("#log .message")).to_have_class("message")
        await expect(ann.locator("#text")).to_have_value("")

        await bob.fill("#text", "line one")
        await bob.press("#text", "Shift+Enter")
        await bob.type("#text", "line two")
        await expect(bob.locator("#text")).to_have_value("line one\nline two")  # Shift+Enter did not send
        await bob.press("#text", "Enter")
        await expect(texts(ann)).to_have_text(["hello from ann", "line one\nline two"])
        await expect(ann.locator("#log .message").nth(1)).not_to_have_class("message mine")
        await expect(bob.locator("#log .message").nth(1)).to_have_class("message mine")
        await expect(ann.locator("#log[aria-live=polite]")).to_have_count(1)


async def test_markup_shows_literally_and_runs_nothing(browser: Browser, http: httpx.AsyncClient) -> None:
    markup = "<img src=x onerror=alert(1)>"
    async with serve("html") as server:
        base = server.url("html")
        await http.post(f"{base}/room/xss", json={"userId": "<b>eve</b>", "text": markup + " (history)"})
        page = await open_room(browser, base, "xss", "<i>mallory</i>")
        dialogs: list[str] = []

        async def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            await dialog.dismiss()

        page.on("dialog", on_dialog)
        await say(page, markup)
        log = page.locator("#log")
        await expect(log.locator(".message .text")).to_have_text([markup + " (history)", markup])
        await expect(log.locator(".message .author")).to_have_text(["<b>eve</b>", "<i>mallory</i>"])
        await page.reload()
        await expect(page.locator("#status")).to_have_text("Connected")
        await expect(log.locator(".message .text")).to_have_text([markup + " (history)", markup])
        await expect(log.locator(".message .author")).to_have_text(["<b>eve</b>", "<i>mallory</i>"])
        assert await page.locator("img, b, i").count() == 0
        assert dialogs == []


async def test_reloaded_page_shows_history_once_and_joins_the_stream_without_a_gap(
    browser: Browser, http: httpx.AsyncClient
) -> None:
    async with serve("html") as server:
        base = server.url("html")
        for n in (1, 2):
            await http.post(f"{base}/room/hist", data={"user": "ann", "message": f"old {n}"})
        page = await open_room(browser, base, "hist", "bob")
        await expect(texts(page)).to_have_text(["old 1", "old 2"])
        await say(page, "mine")
        await expect(texts(page)).to_have_text(["old 1", "old 2", "mine"])

        # Hold the connection back after the reload: a message posted between the page's
        # rendering and its subscription must still appear, once.
        async def post_in_the_seam() -> None:
            await http.post(f"{base}/room/hist", data={"user": "ann", "message": "in the seam"})

        await hold_next_socket(page, post_in_the_seam)
        await page.reload()
        await expect(page.locator("#status")).to_have_text("Connected")
        await expect(texts(page)).to_have_text(["old 1", "old 2", "mine", "in the seam"])
        await expect(page.locator("#name")).to_have_value("bob")  # remembered
        await expect(page.locator("#log .message.mine .text")).to_have_text(["mine"])
        await http.post(f"{base}/room/hist", data={"user": "ann", "message": "live"})
        await expect(texts(page)).to_have_text(["old 1", "old 2", "mine", "in the seam", "live"])


async def test_empty_room_page_misses_nothing_posted_before_its_stream_opens(
    browser: Browser, http: httpx.AsyncClient
) -> None:
    async with serve("html") as server:
        base = server.url("html")
        page = await (await browser.new_context()).new_page()

        async def post_first() -> None:
            await http.post(f"{base}/room/fresh", data={"user": "ann", "message": "first!"})

        await hold_next_socket(page, post_first)
        await page.goto(f"{base}/room/fresh")
        await expect(page.locator("#log .message .text")).to_have_text(["first!"])
        await expect(page.locator("#log .notice")).to_have_count(0)  # no "missing messages" notice
        await expect(page.locator("#status")).to_have_text("Connected")


async def test_page_reconnects_after_a_server_restart_and_shows_messages_once(
    browser: Browser, http: httpx.AsyncClient
) -> None:
    port = free_port()
    args = ("--adapter", "html", "--port", f"html={port}", "--keepalive", "1")
    with roomchat_process(*args) as first:
        base = first.urls["html"]
        page = await open_room(browser, base, "restart", "ann")
        await say(page, "before the restart")
        await expect(texts(page)).to_have_text(["before the restart"])
        assert first.terminate() == 0
    await expect(page.locator("#status")).to_have_text("Reconnecting…")
    with roomchat_process(*args) as second:
        assert second.urls["html"] == base
        # The memory backend starts empty: the page's last id is unknown to the
        # new server, which answers `gap` and then all it has.
        for n in (1, 2):
            r = await http.post(f"{base}/room/restart", data={"user": "bob", "message": f"meanwhile {n}"})
            assert r.status_code == 201
        await expect(page.locator("#status")).to_have_text("Connected", timeout=10_000)
        expected = ["before the restart", "meanwhile 1", "meanwhile 2"]
        await expect(texts(page)).to_have_text(expected)
        await expect(page.locator("#log .notice.gap")).to_have_count(1)  # said where history was lost
        await http.post(f"{base}/room/restart", data={"user": "bob", "message": "after"})
        await expect(texts(page)).to_have_text([*expected, "after"])
        second.terminate()


async def test_page_resumes_across_a_server_restart_on_redis_with_no_gap_and_no_duplicate(
    browser: Browser, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    port = free_port()
    with redis_server(tmp_path) as redis:
        args = ("--adapter", "html", "--port", f"html={port}", "--keepalive", "1", "--backend", redis.url)
        with roomchat_process(*args) as first:
            base = first.urls["html"]
            page = await open_room(browser, base, "durable", "ann")
            await say(page, "before the restart")
            await expect(texts(page)).to_have_text(["before the restart"])
            last_shown = await page.locator("#log .message").last.get_attribute("data-id")
            assert last_shown

            # Hold the page's first reconnection attempt until the second server is
            # up, then post through that server before letting the connection through:
            # the page must get that message by resuming from its last id.
            second_up = asyncio.Event()
            resumed_from: list[str] = []
            posted: list[int] = []

            async def post_while_reconnecting() -> None:
                await second_up.wait()
                data = {"user": "bob", "message": "while reconnecting"}
                posted.append((await http.post(f"{base}/room/durable", data=data)).status_code)

            def subscribes(frame: dict[str, Any]) -> None:
                if frame["type"] == "subscribe":
                    resumed_from.append(frame["lastId"])

            await hold_next_socket(page, post_while_reconnecting, subscribes)
            assert first.terminate() == 0
        await expect(page.locator("#status")).to_have_text("Reconnecting…")
        with roomchat_process(*args) as second:
            assert second.urls["html"] == base
            second_up.set()
            await expect(page.locator("#status")).to_have_text("Connected", timeout=10_000)
            assert posted == [201]
            assert resumed_from == [last_shown]  # reconnected from the last message it showed
            for n in (1, 2):
                r = await http.post(f"{base}/room/durable", data={"user": "bob", "message": f"meanwhile {n}"})
                assert r.status_code == 201
            expected = ["before the restart", "while reconnecting", "meanwhile 1", "meanwhile 2"]
            await expect(texts(page)).to_have_text(expected)
            await expect(page.locator("#log .notice.gap")).to_have_count(0)  # Redis kept the history
            await http.post(f"{base}/room/durable", data={"user": "bob", "message": "after"})
            await expect(texts(page)).to_have_text([*expected, "after"])
            await expect(page.locator("#log .notice")).to_have_count(0)
            assert second.terminate() == 0


async def test_keyboard_alone_and_nothing_from_any_other_origin(browser: Browser) -> None:
    async with serve("html") as server:
        base = server.url("html")
        context = await browser.new_context()
        requests: list[str] = []
        problems: list[str] = []

        def on_request(request: Request) -> None:
            requests.append(request.url)

        def on_console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                problems.append(message.text)

        context.on("request", on_request)
        page = await context.new_page()
        sockets: list[str] = []

        def on_websocket(ws: WebSocket) -> None:
            sockets.append(ws.url)

        page.on("websocket", on_websocket)
        page.on("console", on_console)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        # The keyboard alone: the home page focuses the name, Tab goes to the
        # room, Enter joins; the chat page focuses the box once a name is known.
        await page.goto(base)
        await page.keyboard.type("ann")
        await page.keyboard.press("Tab")
        await page.keyboard.type("origins")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{base}/room/origins")
        await expect(page.locator("#status")).to_have_text("Connected")
        await expect(page.locator("#name")).to_have_value("ann")  # carried over from the home page
        await expect(page.locator("#text")).to_be_focused()
        await page.keyboard.type("only from here")
        await page.keyboard.press("Enter")
        await expect(texts(page)).to_have_text(["only from here"])
        await expect(page.locator("#listeners")).to_have_text("1 listening")
        paths = {url.removeprefix(base).partition("?")[0] for url in requests}
        assert {"/static/chat.js", "/static/roomchat.js", "/static/chat.css", "/room/origins/info"} <= paths
        assert [url for url in requests if not url.startswith(base + "/")] == []
        assert sockets == [base.replace("http:", "ws:") + "/api/ws?userId=ann"]
        assert problems == []


async def test_error_for_an_over_long_text_is_shown_next_to_the_box(browser: Browser) -> None:
    async with serve("html", service_settings=ServiceSettings(max_text=200)) as server:
        page = await open_room(browser, server.url("html"), "limits", "ann")
        await say(page, "x" * 201)
        error = page.locator("#error")
        await expect(error).to_have_text("Message must be at most 200 characters")
        await expect(page.locator("#text")).to_have_value("x" * 201)  # kept, to shorten
        await expect(page.locator("#text")).to_have_attribute("aria-invalid", "true")
        assert await page.locator("#log .message").count() == 0
        await say(page, "short")
        await expect(texts(page)).to_have_text(["short"])
        await expect(error).to_be_empty()


async def test_deleted_room_and_lagged_stream_are_handled(browser: Browser, http: httpx.AsyncClient) -> None:
    async with serve("html", service_settings=ServiceSettings(buffer=1)) as server:
        base = server.url("html")
        page = await open_room(browser, base, "busy", "ann")
        # Two messages published before the writer runs: a buffer of one
        # overflows, the stream ends as lagged, and the page resumes.
        await server.service.submit("busy", "bob", "burst 1")
        await server.service.submit("busy", "bob", "burst 2")
        await expect(texts(page)).to_have_text(["burst 1", "burst 2"])
        assert server.service.stats().lagged >= 1
        await expect(page.locator("#status")).to_have_text("Connected")

        assert (await http.delete(f"{base}/room/busy")).status_code == 200
        await expect(page.locator("#status")).to_have_text("Room deleted")
        await expect(page.locator("#log .notice.deleted")).to_contain_text("This room was deleted.")


async def test_two_named_pages_see_each_other_arrive_and_leave(browser: Browser) -> None:
    # A 1 s keepalive: the server learns of a closed page by the next write at the latest.
    async with serve("html", keepalive=1.0) as server:
        base = server.url("html")
        ann = await open_room(browser, base, "people", "ann")
        await expect(ann.locator("#people li")).to_have_text(["ann"])
        bob = await open_room(browser, base, "people", "bob")
        for page in (ann, bob):
            await expect(page.locator("#people li")).to_have_text(["ann", "bob"])
        await expect(ann.locator("#log .notice.presence")).to_have_text(["bob joined"])
        await bob.context.close()
        await expect(ann.locator("#people li")).to_have_text(["ann"], timeout=15_000)
        await expect(ann.locator("#log .notice.presence")).to_have_text(["bob joined", "bob left"])
        await expect(ann.locator("#log .message")).to_have_count(0)
        anonymous = await (await browser.new_context()).new_page()
        await anonymous.goto(f"{base}/room/people")
        await expect(anonymous.locator("#people li")).to_have_text(["ann", "1 anonymous"])
        # ann's own page reconnecting inside the window shows nothing to anybody.
        await ann.evaluate("() => document.getElementById('name').dispatchEvent(new Event('change'))")
        await expect(ann.locator("#status")).to_have_text("Connected")
        await asyncio.sleep(3)  # the windows in which a leave would have been announced
        await expect(anonymous.locator("#log .notice.presence")).to_have_count(0)
        await expect(anonymous.locator("#people li")).to_have_text(["ann", "1 anonymous"])
