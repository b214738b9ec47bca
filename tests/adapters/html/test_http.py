"""The html adapter over plain HTTP: the form, JSON, errors, headers, the stream."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support import serve, stream

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_form_post_answers_like_rest(client: httpx.AsyncClient) -> None:
    async with serve("html") as server:
        base = server.url("html")
        r = await client.post(f"{base}/room/lobby", data={"user": "ann", "message": "hi <b>there</b>"})
        assert r.status_code == 201
        body = r.json()
        assert body["success"] is True
        message = body["message"]
        assert {k: message[k] for k in ("roomId", "userId", "text")} == {
            "roomId": "lobby", "userId": "ann", "text": "hi <b>there</b>"
        }
        assert message["id"] and message["time"].endswith("Z")
        page = await client.get(f"{base}/room/lobby")
        assert "hi &lt;b&gt;there&lt;/b&gt;" in page.text and "<b>there" not in page.text


async def test_form_from_a_browser_without_script_goes_back_to_the_page(client: httpx.AsyncClient) -> None:
    async with serve("html") as server:
        base = server.url("html")
        form = {"user": "ann", "message": "no js"}
        r = await client.post(f"{base}/room/lobby", data=form, headers={"accept": "text/html,*/*"})
        assert r.status_code == 303
        assert r.headers["location"] == "/room/lobby"
        assert "no js" in (await client.get(f"{base}/room/lobby")).text


@pytest.mark.parametrize("field", ["text", "data"])
async def test_json_post_as_rest(client: httpx.AsyncClient, field: str) -> None:
    async with serve("html") as server:
        r = await client.post(f"{server.url('html')}/room/lobby", json={"userId": "bob", field: "hello"})
        assert r.status_code == 201
        assert r.json()["message"]["text"] == "hello"
        assert r.json()["message"]["userId"] == "bob"


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "words"),
    [
        ("/room/lobby", {"data": {"user": "ann"}}, 422, "message"),
        ("/room/lobby", {"data": {"message": "hi"}}, 422, "user"),
        ("/room/lobby", {"data": {"user": " ", "message": "hi"}}, 422, "user must be 1-64"),
        ("/room/lobby", {"data": {"user": "ann", "message": "x" * 4097}}, 422, "message must be at most"),
        ("/room/lobby", {"json": {"userId": " ", "text": "hi"}}, 422, "userId must be 1-64"),
        ("/room/lobby", {"content": b"user=ann&message=%ZZ", "headers": FORM}, 400, "urlencoded"),
        ("/room/lobby", {"content": b"user=ann&message=50%", "headers": FORM}, 400, "urlencoded"),
        ("/room/bad!room", {"data": {"user": "ann", "message": "hi"}}, 422, "roomId"),
        ("/room/lobby", {"content": b"user=%ff&message=x", "headers": FORM}, 400, "UTF-8"),
        ("/room/lobby", {"content": b"{nope", "headers": {"content-type": "application/json"}}, 400, "JSON"),
        ("/room/lobby", {"json": ["a list"]}, 400, "object"),
        ("/room/lobby", {"json": {"userId": "ann"}}, 422, "text"),
        ("/room/lobby", {"files": {"message": b"hi"}, "data": {"user": "ann"}}, 415, "urlencoded"),
        ("/room/lobby", {"content": b"user=a&message=" + b"x" * 70_000, "headers": FORM}, 413, "at most"),
    ],
)
async def test_bad_posts_get_contract_errors(
    client: httpx.AsyncClient, path: str, kwargs: dict[str, object], status: int, words: str
) -> None:
    async with serve("html") as server:
        r = await client.post(f"{server.url('html')}{path}", **kwargs)  # type: ignore[arg-type]
        assert r.status_code == status, r.text
        assert r.json()["code"] == status
        assert words in r.json()["message"]


async def test_pages_send_a_strict_content_security_policy(client: httpx.AsyncClient) -> None:
    async with serve("html") as server:
        base = server.url("html")
        for path in ("/", "/room/lobby", "/room/bad!room", "/join?room=bad!"):
            r = await client.get(f"{base}{path}")
            assert r.headers["content-type"].startswith("text/html"), path
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp
            assert "script-src 'self';" in csp
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert "<script>" not in r.text and not re.search(r"\son[a-z]+=", r.text)  # nothing inline
            assert "http://" not in r.text and "https://" not in r.text  # nothing from elsewhere


async def test_a_bad_room_name_is_a_clear_page_not_a_500(client: httpx.AsyncClient) -> None:
    async with serve("html") as server:
        base = server.url("html")
        for path in ("/room/bad!room", "/room/" + "x" * 65, "/join?room=a%20b", "/join"):
            r = await client.get(f"{base}{path}")
            assert r.status_code == 422, path
            assert "That room name cannot be used" in r.text
            assert "1-64 characters" in r.text
        r = await client.get(f"{base}/join?room=good.room-1")
        assert r.status_code == 303 and r.headers["location"] == "/room/good.room-1"


async def test_unknown_paths_answer_404_as_json_or_a_page(client: httpx.AsyncClient) -> None:
    async with serve("html") as server:
        base = server.url("html")
        r = await client.get(f"{base}/nothing", headers={"accept": "application/json"})
        assert r.status_code == 404 and r.json() == {"code": 404, "message": "Not Found"}
        r = await client.get(f"{base}/nothing", headers={"accept": "text/html"})
        assert r.status_code == 404 and "Nothing here" in r.text
        r = await client.get(f"{base}/static/missing.js")
        assert r.status_code == 404


async def test_static_files_and_home_page(client: httpx.AsyncClient) -> None:
    async with serve("html") as server:
        base = server.url("html")
        js = await client.get(f"{base}/static/chat.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        css = await client.get(f"{base}/static/chat.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "No active rooms yet" in (await client.get(base)).text
        await client.post(f"{base}/room/kitchen", data={"user": "ann", "message": "hi"})
        home = await client.get(base)
        assert 'href="/room/kitchen"' in home.text


async def test_stream_info_and_delete(client: httpx.AsyncClient) -> None:
    async with serve("html") as server:
        base = server.url("html")
        first = (await client.post(f"{base}/room/lobby", data={"user": "ann", "message": "one"})).json()
        async with stream(client, f"{base}/stream/lobby?lastEventId={first['message']['id']}") as sse:
            info = (await client.get(f"{base}/room/lobby/info")).json()
            assert info == {"roomId": "lobby", "listeners": 1, "lastId": first["message"]["id"]}
            assert server.service.stats().listeners.get("html") == 1
            second = (await client.post(f"{base}/room/lobby", json={"userId": "bob", "text": "two"})).json()
            [ev] = await sse.messages(1)
            assert ev.id == second["message"]["id"] and ev.json() == second["message"]
            r = await client.delete(f"{base}/room/lobby")
            assert r.status_code == 200 and r.json() == {"success": True}
            ev2 = await sse.next()
            assert ev2 is not None and ev2.event == "deleted" and ev2.json() == {"roomId": "lobby"}
            assert await sse.next() is None


async def test_stream_resumes_with_a_gap_for_an_unknown_id(client: httpx.AsyncClient) -> None:
    async with serve("html") as server:
        base = server.url("html")
        posted = (await client.post(f"{base}/room/lobby", data={"user": "ann", "message": "kept"})).json()
        async with stream(client, f"{base}/stream/lobby", headers={"last-event-id": "0-0"}) as sse:
            gap = await sse.next()
            assert gap is not None and gap.event == "gap"
            assert gap.json() == {"lastEventId": "0-0", "oldestId": posted["message"]["id"]}
            [ev] = await sse.messages(1)
            assert ev.json() == posted["message"]
        r = await client.get(f"{base}/stream/bad!room")
        assert r.status_code == 422 and "roomId" in r.json()["message"]
        r = await client.delete(f"{base}/room/bad!room")
        assert r.status_code == 422
