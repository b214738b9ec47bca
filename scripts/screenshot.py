"""Takes docs/chat.png: the chat page with a few messages, in the system Chromium.

    .venv/bin/python scripts/screenshot.py [--out docs/chat.png] [--width 1000 --height 700]

Runs the `html` adapter in-process on a free port with the memory backend, so
it touches nothing else. Needs the `playwright` package and a Chromium
(`/usr/bin/chromium`, or set CHROMIUM=/path/to/chrome).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from playwright.async_api import async_playwright, expect

from roomchat.adapters import AdapterSettings
from roomchat.adapters.html import HtmlAdapter
from roomchat.bootstrap import ServiceSettings, build_service
from roomchat.runner import run

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOM = "design-review"
CONVERSATION = [
    ("grace", "Morning! Did the new build go out?"),
    ("ada", "Yes, at 9:40. Every open page reconnected by itself: nothing missing, nothing twice."),
    ("grace", "Lovely. Notes for the release:\n• Enter sends\n• Shift+Enter starts a new line"),
    ("linus", "Markup stays text, too: <img src=x onerror=alert(1)>"),
]


async def main(out: Path, width: int, height: int) -> None:
    service = build_service(ServiceSettings())
    adapter = HtmlAdapter(service, AdapterSettings(port=0))
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stopping = asyncio.Event()
    server = asyncio.ensure_future(
        run(service, {"html": adapter}, lambda _, url: listening.set_result(url), stopping)
    )
    try:
        base = await asyncio.wait_for(listening, 10)
        for user, text in CONVERSATION:
            await service.submit(ROOM, user, text)
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
            )
            other = await browser.new_page()  # a second listener, so the count is not 1
            await other.goto(f"{base}/room/{ROOM}")
            page = await browser.new_page(viewport={"width": width, "height": height})
            await page.goto(base)
            await page.fill("#name", "ada")
            await page.fill("#room", ROOM)
            await page.press("#room", "Enter")
            await expect(page.locator("#status")).to_have_text("Connected")
            await page.fill("#text", "Writing the docs now; the screenshot is next.")
            await page.press("#text", "Enter")
            await expect(page.locator("#log .message")).to_have_count(len(CONVERSATION) + 1)
            await expect(page.locator("#listeners")).to_have_text("2 listening")
            await page.locator("#text").blur()
            await page.screenshot(path=str(out))
            await browser.close()
    finally:
        stopping.set()
        await server


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "docs" / "chat.png"
    parser.add_argument("--out", type=Path, default=default)
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--height", type=int, default=700)
    options = parser.parse_args()
    asyncio.run(main(options.out, options.width, options.height))
    print(f"wrote {options.out}")
