"""Browser safety from the attacker's side, in the real browser (contract: Browser
safety, the chat page under `--auth jwt`, paged room lists).

A second server on another port plays the other site: its page form-posts and
fetch-posts to roomchat as a visitor's browser would. Chromium resolves the
made-up host names below to 127.0.0.1, so that site is cross-site, not merely
another port of the same host.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Response, async_playwright, expect

from roomchat.bootstrap import ServiceSettings
from roomchat.tokens import JwtAuthenticator, mint
from tests.adapters.html.conftest import ARGS, CHROMIUM
from tests.adapters.html.test_browser import open_room, say, texts
from tests.support import Running, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")

EVIL_HOST = "evil.test"
FRIEND_HOST = "friend.test"
SECRET = "a-browser-test-secret-of-32-bytes!!"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    rules = f"--host-resolver-rules=MAP {EVIL_HOST} 127.0.0.1, MAP {FRIEND_HOST} 127.0.0.1"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, rules])
        yield b
        await b.close()


@dataclass
class Site:
    origin: str = ""
    html: str = ""  # the one page it serves, at every path


@contextlib.asynccontextmanager
async def other_site(host: str) -> AsyncIterator[Site]:
    """Another web site, on its own port of 127.0.0.1, known to the browser as `host`."""
    site = Site()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            body = site.html.encode()
            head = f"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {len(body)}\r\n"
            writer.write(head.encode() + b"connection: close\r\n\r\n" + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    site.origin = f"http://{host}:{server.sockets[0].getsockname()[1]}"
    try:
        yield site
    finally:
        server.close()
        await server.wait_closed()


def attacker_page(html_base: str, rest_base: str) -> str:
    """What a malicious page does with a visitor's browser: no preflight needed for any of it."""
    forged = json.dumps({"userId": "eve", "text": "forged json"})
    return f"""<!doctype html><title>win a prize</title>
<iframe name="sink"></iframe>
<form id="f" method="post" action="{html_base}/room/csrf" target="sink">
  <input name="user" value="eve"><input name="message" value="forged form"></form>
<script>
document.getElementById("f").submit();
const plain = {{
  method: "POST", mode: "no-cors", headers: {{ "content-type": "text/plain" }}, body: {json.dumps(forged)},
}};
Promise.allSettled([
  fetch("{html_base}/room/csrf", plain),
  fetch("{rest_base}/api/room/csrf", plain),
  fetch("{rest_base}/api/room/keep", {{ method: "DELETE" }}),  // needs a preflight: refused
]).then(() => {{ document.title = "done"; }});
</script>"""


def friend_page(rest_base: str) -> str:
    """A page on an origin the operator allowed: it posts JSON (preflighted) and reads the answer."""
    return f"""<!doctype html><title>friend</title><script>
fetch("{rest_base}/api/room/shared", {{
  method: "POST",
  headers: {{ "content-type": "application/json", "idempotency-key": "k1" }},
  body: JSON.stringify({{ userId: "ann", text: "from a friend" }}),
}}).then(async (r) => {{ document.title = r.status + " " + (await r.json()).message.text; }},
         (e) => {{ document.title = "refused"; }});
</script>"""


@pytest.mark.parametrize("host", [EVIL_HOST, "127.0.0.1"], ids=["cross-site", "same-host-other-port"])
async def test_another_site_cannot_post_or_delete_through_a_visitor_s_browser(
    browser: Browser, host: str
) -> None:
    async with serve("html", "rest") as server, other_site(host) as evil:
        await server.service.submit("keep", "ann", "still here")
        html_base, rest_base = server.url("html"), server.url("rest")
        evil.html = attacker_page(html_base, rest_base)
        page = await (await browser.new_context()).new_page()
        answers: list[tuple[str, str, int]] = []
        three_posts = asyncio.Event()

        def on_response(response: Response) -> None:
            if response.url.startswith((html_base, rest_base)):
                answers.append((response.request.method, response.url.split("/", 3)[3], response.status))
                if len(posts()) == 3:
                    three_posts.set()

        def posts() -> list[tuple[str, str, int]]:
            return sorted(a for a in answers if a[0] == "POST")

        page.on("response", on_response)
        await page.goto(evil.origin)
        await expect(page).to_have_title("done")
        await asyncio.wait_for(three_posts.wait(), 10)  # the form's answer may come after the title
        assert posts() == [
            ("POST", "api/room/csrf", 403),
            ("POST", "room/csrf", 403),
            ("POST", "room/csrf", 403),
        ]
        assert [a for a in answers if a[2] < 400] == []
        assert await server.service.history("csrf") == []
        assert [m.text for m in await server.service.history("keep")] == ["still here"]


async def test_an_allowed_cors_origin_posts_and_reads_the_answer_and_no_other_does(browser: Browser) -> None:
    async with contextlib.AsyncExitStack() as stack:
        friend = await stack.enter_async_context(other_site(FRIEND_HOST))
        stranger = await stack.enter_async_context(other_site(FRIEND_HOST))  # another port: another origin
        server = await stack.enter_async_context(serve("rest", cors_origins=(friend.origin,)))
        friend.html = stranger.html = friend_page(server.url())
        page = await (await browser.new_context()).new_page()
        await page.goto(friend.origin)
        await expect(page).to_have_title("201 from a friend")
        page = await (await browser.new_context()).new_page()
        await page.goto(stranger.origin)
        await expect(page).to_have_title("refused")
        assert [m.text for m in await server.service.history("shared")] == ["from a friend"]


@pytest.mark.parametrize(
    ("name", "why"),
    [("\u200b\u200d", "User must contain a visible character"), ("ann\u202e", "bidirectional")],
    ids=["zero-width", "bidi-override"],
)
async def test_an_invisible_or_bidi_name_is_refused_on_the_page(
    browser: Browser, name: str, why: str
) -> None:
    async with serve("html") as server:
        page = await open_room(browser, server.url("html"), "names", name)
        await say(page, "hello")
        await expect(page.locator("#error")).to_contain_text(why)
        await expect(page.locator("#name")).to_have_attribute("aria-invalid", "true")
        assert await server.service.history("names") == []


async def test_each_name_and_text_is_shown_isolated(browser: Browser, client: httpx.AsyncClient) -> None:
    flipped = "\u202eevil text\u202c then more"
    async with serve("html") as server:
        base = server.url("html")
        await client.post(f"{base}/room/bidi", json={"userId": "سارا", "text": flipped})
        page = await open_room(browser, base, "bidi", "ann")
        await say(page, "\u2067isolate opened and never closed")
        await client.post(f"{base}/room/bidi", json={"userId": "bob", "text": "after"})
        for _ in range(2):  # rendered by the server, then by the script after a reload
            await expect(texts(page)).to_have_text(
                [flipped, "\u2067isolate opened and never closed", "after"]
            )
            await expect(page.locator("#log .message .text[dir=auto]")).to_have_count(3)
            await expect(page.locator("#log .message bdi.author")).to_have_text(["سارا", "ann", "bob"])
            # An unclosed override or isolate stays inside its own element.
            boxes = [await page.locator("#log .message .author").nth(i).bounding_box() for i in range(3)]
            assert all(box is not None and box["width"] > 0 for box in boxes)
            await page.reload()
            await expect(page.locator("#status")).to_have_text("Connected")


async def test_the_home_page_shows_one_page_of_rooms_and_searches_by_prefix(browser: Browser) -> None:
    async with serve("html") as server:
        for n in range(120):
            await server.service.submit(f"room-{n:03d}", "ann", "hi")
        await server.service.submit("lobby", "ann", "hi")
        page = await (await browser.new_context()).new_page()
        await page.goto(server.url("html"))
        rooms = page.locator(".rooms a")
        await expect(rooms).to_have_count(50)
        await expect(rooms.first).to_have_text("lobby")
        await expect(rooms.last).to_have_text("room-048")
        await page.click("#next")
        await expect(rooms).to_have_count(50)
        await expect(rooms.first).to_have_text("room-049")
        await page.click("#next")
        await expect(rooms).to_have_count(21)
        await expect(rooms.first).to_have_text("room-099")
        await expect(rooms.last).to_have_text("room-119")
        await expect(page.locator("#next")).to_have_count(0)
        await page.click("#first")
        await expect(rooms.first).to_have_text("lobby")

        await page.fill("#q", "room-11")
        await page.press("#q", "Enter")
        await expect(rooms).to_have_text([f"room-11{n}" for n in range(10)])
        await expect(page.locator("#next")).to_have_count(0)
        await expect(page.locator("#q")).to_have_value("room-11")
        await page.fill("#q", "room-")
        await page.press("#q", "Enter")
        await expect(rooms).to_have_count(50)
        await page.click("#next")
        await page.click("#next")
        await expect(rooms).to_have_count(20)
        await expect(rooms.first).to_have_text("room-100")
        await page.fill("#q", "nothing")
        await page.press("#q", "Enter")
        await expect(page.locator(".rooms")).to_have_count(0)
        await expect(page.locator("main")).to_contain_text("No active room starts with “nothing”")


# -- the chat page under --auth jwt ---------------------------------------------


@contextlib.asynccontextmanager
async def jwt_server() -> AsyncIterator[Running]:
    async with serve("html", service_settings=ServiceSettings(auth=JwtAuthenticator(SECRET))) as server:
        yield server


def token(sub: str, **claims: object) -> str:
    return mint(SECRET, sub, **claims)  # type: ignore[arg-type]


async def post_as(http: httpx.AsyncClient, server: Running, room: str, sub: str, text: str) -> None:
    r = await http.post(
        f"{server.url('html')}/room/{room}",
        data={"message": text},
        headers={"authorization": f"Bearer {token(sub)}"},
    )
    assert r.status_code == 201, r.text


async def test_the_page_chats_as_the_token_s_subject(browser: Browser, client: httpx.AsyncClient) -> None:
    async with jwt_server() as server:
        base = server.url("html")
        await post_as(client, server, "team", "bob", "before you came")
        context = await browser.new_context()
        page = await context.new_page()
        sent: list[str] = []
        page.on("request", lambda r: sent.append(r.url))
        await page.goto(f"{base}/room/team#token={token('ann')}")
        await expect(page.locator("#status")).to_have_text("Connected")
        assert page.url == f"{base}/room/team"  # the token is out of the address bar
        assert not [url for url in sent if "token" in url]  # and never sent in a URL
        await expect(page.locator("#name")).to_have_value("ann")
        await expect(page.locator("#name")).to_have_attribute("readonly", "")
        await expect(texts(page)).to_have_text(["before you came"])  # replayed by the stream

        await say(page, "hello as ann")
        await expect(texts(page)).to_have_text(["before you came", "hello as ann"])
        await expect(page.locator("#log .message.mine .author")).to_have_text(["ann"])
        cookies = {c["name"]: c for c in await context.cookies()}
        assert cookies["roomchat_token"]["sameSite"] == "Strict" and cookies["roomchat_token"]["path"] == "/"

        # A reload keeps the tab's token; the page's own GET now carries it and shows history.
        await page.reload()
        await expect(page.locator("#status")).to_have_text("Connected")
        await expect(page.locator("#name")).to_have_value("ann")
        await expect(texts(page)).to_have_text(["before you came", "hello as ann"])
        await post_as(client, server, "team", "bob", "live")
        await expect(texts(page)).to_have_text(["before you came", "hello as ann", "live"])


async def test_without_a_token_the_page_says_one_is_needed(
    browser: Browser, client: httpx.AsyncClient
) -> None:
    async with jwt_server() as server:
        await post_as(client, server, "team", "bob", "secret plans")
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{server.url('html')}/room/team")
        await expect(page.locator("#token-needed")).to_be_visible()
        await expect(page.locator("#token-needed")).to_contain_text("needs a token")
        await expect(page.locator("#status")).to_have_text("Needs a token")
        await expect(page.locator("#text")).to_be_disabled()
        assert await page.locator("#log .message").count() == 0  # nothing of the room leaked

        await page.goto(server.url("html"))
        await expect(page.locator("#rooms-need-token")).to_be_visible()
        await expect(page.locator(".rooms")).to_have_count(0)


async def test_with_anonymous_read_the_page_shows_the_room_but_posts_need_a_token(
    browser: Browser, client: httpx.AsyncClient
) -> None:
    settings = ServiceSettings(auth=JwtAuthenticator(SECRET, anonymous_read=True))
    async with serve("html", service_settings=settings) as server:
        await post_as(client, server, "team", "bob", "open plans")
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{server.url('html')}/room/team")
        await expect(page.locator("#status")).to_have_text("Connected")
        await expect(texts(page)).to_have_text(["open plans"])
        await expect(page.locator("#token-needed")).to_be_visible()
        await expect(page.locator("#text")).to_be_disabled()
        await post_as(client, server, "team", "bob", "live")
        await expect(texts(page)).to_have_text(["open plans", "live"])


async def test_an_expired_or_too_narrow_token_is_said_plainly(browser: Browser) -> None:
    async with jwt_server() as server:
        base = server.url("html")
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{base}/room/team#token={token('ann', ttl=-120)}")
        await expect(page.locator("#error")).to_have_text(
            "Your token has expired or is not valid: open a fresh link."
        )
        await expect(page.locator("#status")).to_have_text("Stopped")

        page = await (await browser.new_context()).new_page()
        await page.goto(f"{base}/room/team#token={token('ann', rooms=['other-*'])}")
        await expect(page.locator("#error")).to_have_text("Your token does not open this room.")
        await expect(page.locator("#text")).to_be_disabled()

        # A fresh link opened in the same tab carries on.
        await page.goto(f"{base}/room/team#token={token('bob')}")
        await expect(page.locator("#status")).to_have_text("Connected")
        await expect(page.locator("#name")).to_have_value("bob")
        await expect(page.locator("#error")).to_be_empty()
        await say(page, "back again")
        await expect(texts(page)).to_have_text(["back again"])


async def test_a_token_that_expires_while_the_page_is_open_is_said_plainly(browser: Browser) -> None:
    async with jwt_server() as server:
        page = await (await browser.new_context()).new_page()
        # Past the 30 s leeway about five seconds from now: the page connects, then the
        # server ends its subscription (`expired`) and refuses the token sent again.
        await page.goto(f"{server.url('html')}/room/team#token={token('ann', ttl=-25)}")
        await expect(page.locator("#status")).to_have_text("Connected")
        await expect(page.locator("#status")).to_have_text("Stopped", timeout=15_000)
        await expect(page.locator("#error")).to_have_text(
            "Your token has expired or is not valid: open a fresh link."
        )
        await expect(page.locator("#text")).to_be_disabled()


async def test_the_api_docs_page_works_under_its_strict_policy(browser: Browser) -> None:
    async with serve("rest") as server:
        page = await (await browser.new_context()).new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.on(
            "console",
            lambda message: (
                problems.append(message.text)
                if message.type == "error" and "Failed to load resource" not in message.text  # the favicon
                else None
            ),
        )
        page.on("requestfailed", lambda request: problems.append(f"{request.url} failed"))
        response = await page.goto(f"{server.url()}/docs")
        assert response is not None
        assert "frame-ancestors 'none'" in (await response.all_headers())["content-security-policy"]
        await expect(page.locator("#title")).to_contain_text("roomchat")
        await expect(page.locator("#ops details").first).to_be_visible()
        assert await page.locator("#ops details").count() >= 5
        # Its stylesheet applied (60rem):
        assert await page.evaluate("getComputedStyle(document.body).maxWidth") == "960px"
        assert problems == []  # no script or style refused by the policy


async def test_the_home_page_with_a_token_lists_the_rooms_the_token_may_read(
    browser: Browser, client: httpx.AsyncClient
) -> None:
    async with jwt_server() as server:
        for room in ("team-a", "team-b", "secret"):
            await post_as(client, server, room, "bob", "hi")
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{server.url('html')}/#token={token('ann', rooms=['team-*'])}")
        # The page reloads itself once it has the token: two page loads, on a shared machine.
        await expect(page.locator(".rooms a")).to_have_text(["team-a", "team-b"], timeout=15_000)
        assert page.url == f"{server.url('html')}/"
        await expect(page.locator("#name")).to_have_count(0)  # the name is the token's
        await page.click("text=team-b")
        await expect(page.locator("#status")).to_have_text("Connected")
        await expect(page.locator("#name")).to_have_value("ann")
        await expect(texts(page)).to_have_text(["hi"])  # its own GET carried the token this time
