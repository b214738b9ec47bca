"""docs/websocket.md's browser client, run as it is in Chromium: seven rooms on one
WebSocket (a seventh event stream would wait for one of HTTP/1.1's six connections)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

from tests.adapters.html.conftest import ARGS, CHROMIUM
from tests.support import serve

DOC = Path(__file__).parents[3] / "docs" / "websocket.md"


def example() -> str:
    found = re.search(r"## A browser client\n.*?```js\n(.*?)```", DOC.read_text(), re.S)
    assert found, "docs/websocket.md has no browser client example"
    return found.group(1)


async def test_the_docs_browser_client_gets_a_message_in_each_of_seven_rooms() -> None:
    rooms = [f"side-{i}" for i in range(7)]
    async with serve("html") as server, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(server.url("html") + "/")  # the page's origin and its Content-Security-Policy
            await page.evaluate(
                "(rooms) => {" + example() + """
                window.got = [];
                window.client = new Rooms(location.origin.replace(/^http/, "ws") + "/ws", (m) => got.push(m));
                rooms.forEach((room) => client.subscribe(room));
            }""",
                rooms,
            )
            for room in rooms:
                assert await server.listeners_become(room, 1), room
            async with httpx.AsyncClient(base_url=server.url("html")) as http:
                for room in rooms:
                    r = await http.post(f"/room/{room}", json={"userId": "bob", "text": f"hello {room}"})
                    assert r.status_code == 201
            await page.wait_for_function("got.length >= 7", timeout=10_000)
            got = await page.evaluate("got")
            assert sorted((m["roomId"], m["text"]) for m in got) == [(r, f"hello {r}") for r in rooms]
            ack = await page.evaluate("client.publish('side-0', 'ann', 'from the browser', 'key-1')")
            again = await page.evaluate("client.publish('side-0', 'ann', 'from the browser', 'key-1')")
            assert ack["type"] == "ack" and again["replayed"] is True
            assert again["message"] == ack["message"]
            async with httpx.AsyncClient(base_url=server.url("html")) as http:  # after what a replay sent
                await http.post("/room/side-0", json={"userId": "bob", "text": "last"})
            await page.wait_for_function("got.some((m) => m.text === 'last')", timeout=10_000)
            assert [m["text"] for m in await page.evaluate("got")].count("from the browser") == 1
        finally:
            await browser.close()
