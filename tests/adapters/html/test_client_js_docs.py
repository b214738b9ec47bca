"""docs/client-js.md's example and the README's JavaScript snippet run as they are written,
as modules of a page of the html adapter's server, against a real `roomchat serve`."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.async_api import ConsoleMessage, Page, Route, async_playwright

from tests.adapters.html.conftest import ARGS, CHROMIUM
from tests.backends.redis_server import free_port
from tests.support import roomchat_process

ROOT = Path(__file__).parents[3]
ID = r"\d+-\d+"


async def printed_at_least(printed: list[str], count: int, within: float = 15.0) -> list[str]:
    deadline = time.monotonic() + within
    while len(printed) < count:
        assert time.monotonic() < deadline, printed
        await asyncio.sleep(0.02)
    return printed


def js_block(path: Path, heading: str) -> str:
    found = re.search(rf"\n{re.escape(heading)}\n.*?```js\n(.*?)```", path.read_text(), re.S)
    assert found, f"{path.name} has no js example under {heading!r}"
    return found.group(1)


async def run_module(page: Page, base: str, source: str) -> list[str]:
    """`source` served at /example.js and imported by the page; what it prints, as it prints it."""
    printed: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "log":  # not the browser's own errors (a refused connection while down)
            printed.append(message.text)

    async def serve_example(route: Route) -> None:
        await route.fulfill(content_type="text/javascript", body=source)

    page.on("console", on_console)
    await page.route(f"{base}/example.js", serve_example)
    await page.goto(base + "/")
    await page.evaluate("import('/example.js')")  # resolves once its top-level awaits have
    return printed


@pytest.mark.parametrize(
    ("doc", "heading"), [("docs/client-js.md", "## Example"), ("README.md", "### JavaScript")]
)
async def test_the_documented_example_runs_and_carries_on_across_a_restart(doc: str, heading: str) -> None:
    source = js_block(ROOT / doc, heading)
    args = ("--adapter", "html", "--port", f"html={free_port()}", "--keepalive", "1")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            with roomchat_process(*args) as server:
                base = server.urls["html"]
                printed = await run_module(page, base, source)
                if doc == "README.md":
                    assert sorted(await printed_at_least(printed, 2))[0] == "hello"
                    assert re.fullmatch(rf"true {ID}", sorted(printed)[1]), printed
                    return
                await printed_at_least(printed, 3)
                assert printed[0] == "connection: connected"
                assert sorted(printed[1:]) == sorted(["ann: hello", f"stored as {printed_id(printed)}"])
                assert server.terminate() == 0
            with roomchat_process(*args) as server:
                async with httpx.AsyncClient() as http:
                    r = await http.post(f"{base}/room/lobby", json={"userId": "bob", "text": "after"})
                    assert r.status_code == 201
                await printed_at_least(printed, 7)
                # The memory backend forgot "hello": the client says so, then carries on.
                assert printed[3:] == [
                    "connection: reconnecting",
                    "connection: connected",
                    "(some messages are no longer kept)",
                    "bob: after",
                ]
                server.terminate()
        finally:
            await browser.close()


def printed_id(printed: list[str]) -> str:
    stored = [line for line in printed if line.startswith("stored as ")]
    assert len(stored) == 1 and re.fullmatch(rf"stored as {ID}", stored[0]), printed
    return stored[0].removeprefix("stored as ")
