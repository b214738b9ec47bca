"""roomchat.js, and the chat page built on it, across real restarts (contract: Clients): a
`roomchat serve --backend sqlite` killed with SIGTERM and with SIGKILL and started again on
the same ports while the browser is subscribed, several times in one test. Every message
posted before, during (REST retrying with an idempotency key) and after is delivered once
and in order, and a publish made while the server is down is stored once."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, expect

from tests.adapters.html.test_browser import open_room, say, texts
from tests.adapters.html.test_roomchat_js import until
from tests.backends.redis_server import free_port
from tests.support import Process, roomchat_process

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

CLIENT = Path(__file__).parents[3] / "clients" / "js" / "roomchat.js"
KILLS = [signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL]
ROOM = "restarts"


class Servers:
    """`roomchat serve --adapter html --adapter rest` on sqlite, on the same two ports each time."""

    def __init__(self, db: Path) -> None:
        self.ports = {"html": free_port(), "rest": free_port()}
        self.args = [
            "--adapter", "html", "--adapter", "rest", "--backend", f"sqlite:///{db}", "--keepalive", "1",
            *(arg for name, port in self.ports.items() for arg in ("--port", f"{name}={port}")),
        ]
        self.url = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self._stack = contextlib.ExitStack()

    def start(self) -> Process:
        server = self._stack.enter_context(roomchat_process(*self.args, expect=2))
        assert server.urls == self.url
        return server

    @contextlib.contextmanager
    def running(self) -> Iterator[Servers]:
        with self._stack:
            yield self


def kill(server: Process, how: signal.Signals) -> None:
    server.proc.send_signal(how)
    server.proc.wait(10)


async def post(http: httpx.AsyncClient, servers: Servers, text: str, within: float = 30.0) -> dict[str, Any]:
    """A REST post retried (same idempotency key) until the server, down or stopping, stores it."""
    deadline = time.monotonic() + within
    while True:
        try:
            r = await http.post(
                f"{servers.url['rest']}/api/room/{ROOM}",
                json={"userId": "bob", "text": text},
                headers={"idempotency-key": f"rest-{text}"},
            )
            if r.status_code in (200, 201):
                message: dict[str, Any] = r.json()["message"]
                return message
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{text!r} not stored within {within} s"
        await asyncio.sleep(0.1)


async def history(http: httpx.AsyncClient, servers: Servers) -> list[dict[str, Any]]:
    r = await http.get(f"{servers.url['rest']}/api/room/{ROOM}/messages", params={"limit": 1000})
    found: list[dict[str, Any]] = r.json()["messages"]
    return found


async def app_on_the_rest_origin(browser: Browser, servers: Servers) -> Page:
    """A page of the rest adapter's origin (its API docs) with clients/js/roomchat.js, as it is
    in the repository, served beside it by Playwright (so it outlives every restart)."""
    app = servers.url["rest"]
    page = await (await browser.new_context()).new_page()

    async def serve_client(route: Route) -> None:
        await route.fulfill(content_type="text/javascript", body=CLIENT.read_text())

    await page.route(f"{app}/roomchat.js", serve_client)
    await page.goto(f"{app}/docs")
    return page


async def test_roomchat_js_delivers_every_message_once_in_order_across_sigterm_and_sigkill(
    browser: Browser, tmp_path: Path
) -> None:
    servers = Servers(tmp_path / "chat.db")
    expected: list[str] = []
    async with httpx.AsyncClient(timeout=5) as http:
        with servers.running():
            server = servers.start()
            page = await app_on_the_rest_origin(browser, servers)
            await page.evaluate(
                """async (room) => {
                    const { RoomchatClient } = await import("/roomchat.js");
                    window.got = [];
                    window.states = [];
                    window.stored = [];
                    window.client = new RoomchatClient(location.origin, { userId: "ann" });
                    client.addEventListener("state", (e) => states.push(e.detail));
                    await client.subscribe(room, { onEvent: (e) => got.push(e) });
                }""",
                ROOM,
            )
            for n, how in enumerate(KILLS):
                expected.append((await post(http, servers, f"before {n}"))["text"])
                await until(page, f"got.some((e) => e.message?.text === 'before {n}')")
                kill(server, how)
                await until(page, "!client.connected")
                await page.evaluate(
                    "([room, text]) => { client.publish(room, text).then((m) => stored.push(m)); }",
                    [ROOM, f"published while down {n}"],
                )
                during = asyncio.ensure_future(post(http, servers, f"during {n}"))
                await asyncio.sleep(0.3)  # let it fail against the stopped server at least once
                server = servers.start()
                expected += [(await during)["text"], f"published while down {n}"]
                await until(page, f"stored.length === {n + 1}")
                expected.append((await post(http, servers, f"after {n}"))["text"])

            stored = await history(http, servers)
            await until(page, f"got.filter((e) => e.type === 'message').length >= {len(stored)}", 20)
            got = await page.evaluate("got.filter((e) => e.type === 'message').map((e) => e.message)")
            assert [m["id"] for m in got] == [m["id"] for m in stored]  # once each, in the room's order
            assert sorted(m["text"] for m in stored) == sorted(expected)  # each stored exactly once
            published = await page.evaluate("stored")
            assert [m["text"] for m in published] == [f"published while down {n}" for n in range(len(KILLS))]
            assert {m["id"] for m in published} <= {m["id"] for m in stored}
            assert await page.evaluate("got.filter((e) => e.type === 'gap')") == []
            assert await page.evaluate("states") == ["connected", *["reconnecting", "connected"] * len(KILLS)]
            server.terminate()


async def test_the_chat_page_shows_every_message_once_in_order_across_sigterm_and_sigkill(
    browser: Browser, tmp_path: Path
) -> None:
    servers = Servers(tmp_path / "chat.db")
    async with httpx.AsyncClient(timeout=5) as http:
        with servers.running():
            server = servers.start()
            page = await open_room(browser, servers.url["html"], ROOM, "ann")
            status = page.locator("#status")
            for n, how in enumerate(KILLS):
                await post(http, servers, f"before {n}")
                await expect(texts(page).last).to_have_text(f"before {n}")
                kill(server, how)
                await expect(status).to_have_text("Reconnecting…")
                await say(page, f"typed while down {n}")  # waits for the connection, then is sent
                during = asyncio.ensure_future(post(http, servers, f"during {n}"))
                await asyncio.sleep(0.3)
                server = servers.start()
                await during
                await expect(status).to_have_text("Connected", timeout=15_000)
                await expect(page.locator("#text")).to_have_value("", timeout=15_000)  # acknowledged
                await post(http, servers, f"after {n}")

            stored = await history(http, servers)
            shown = texts(page)
            await expect(shown).to_have_text([m["text"] for m in stored], timeout=15_000)
            shown_ids = "(items) => items.map((li) => li.dataset.id)"
            ids = await page.locator("#log .message").evaluate_all(shown_ids)
            assert ids == [m["id"] for m in stored]
            assert len(stored) == 4 * len(KILLS)  # before, during, typed, after: each stored once
            assert len({m["text"] for m in stored}) == len(stored)
            await expect(page.locator("#log .notice")).to_have_count(0)  # no gap: sqlite kept it all
            server.terminate()
