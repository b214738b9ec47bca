"""The OpenAPI document and the server agree: a bounded, seeded schemathesis run, and
the disagreements it once found, pinned one by one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jsonschema_rs
import pytest

from tests.support import roomchat_process, serve

ROOT = Path(__file__).parent.parent.parent.parent


@pytest.fixture(scope="module")
def rest() -> Iterator[str]:
    with roomchat_process("--adapter", "rest", "--port", "rest=0") as server:
        yield server.urls["rest"]
        assert server.terminate() == 0


@pytest.mark.timeout(150)
def test_schemathesis_finds_the_document_and_the_server_in_agreement(rest: str, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{rest}/openapi.json",
        "--checks", "all",
        # Rooms exist as soon as they are named: a deleted room's info is still a 200.
        "--exclude-checks", "use_after_free",
        # streams never end (test_malformed.py covers their errors); a WebSocket needs an upgrade
        "--exclude-path-regex", "^/api/(stream/|ws$)",
        "--seed", "13", "--max-examples", "15", "--workers", "1",
        "--generation-database", "none", "--request-timeout", "5", "--no-color",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=140)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "No issues found" in out.stdout


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async with serve("rest") as server:
        yield server.url()


@pytest.mark.parametrize(
    ("adapter", "path", "allowed"),
    [
        ("rest", "/api/room/lobby", "DELETE, GET, HEAD, POST"),
        ("rest", "/api/rooms", "GET, HEAD"),
        ("html", "/room/lobby", "DELETE, GET, HEAD, POST"),
    ],
)
async def test_a_405_allows_every_method_of_the_path(adapter: str, path: str, allowed: str) -> None:
    async with serve("rest", "html") as server, httpx.AsyncClient() as client:
        r = await client.request("PATCH", server.url(adapter) + path, headers={"accept": "application/json"})
        assert r.status_code == 405
        assert r.headers["allow"] == allowed
        assert r.json()["code"] == 405


@pytest.mark.parametrize("data", [{}, 5, None])
async def test_data_that_is_not_a_string_is_refused_even_beside_text(base: str, data: object) -> None:
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{base}/api/room/lobby", json={"userId": "ann", "text": "hi", "data": data})
        assert r.status_code == 422
        assert "data" in r.json()["message"]
        assert (await client.get(f"{base}/api/room/lobby/messages")).json() == {"messages": []}


async def test_an_empty_after_is_the_same_as_none(base: str) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(f"{base}/api/room/lobby", json={"userId": "ann", "text": "hi"})
        page = await client.get(f"{base}/api/room/lobby/messages?after=")
        assert [m["text"] for m in page.json()["messages"]] == ["hi"]
        rooms = (await client.get(f"{base}/api/rooms?after=")).json()
        last = page.json()["messages"][0]["id"]
        assert rooms == {"rooms": [{"roomId": "lobby", "listeners": 0, "lastId": last}], "next": None}


_FROM = [{}, {"after": "1-1"}, {"before": "1-1"}, {"after": "1-1", "before": "1-2"}]


@pytest.mark.parametrize("query", [*_FROM, {"after": "", "before": "1-2"}])
async def test_the_document_refuses_after_with_before_exactly_where_the_server_does(
    base: str, query: dict[str, str]
) -> None:
    async with httpx.AsyncClient() as client:
        document = (await client.get(f"{base}/openapi.json")).json()
        answer = await client.get(f"{base}/api/room/lobby/messages", params=query)
    operation = document["paths"]["/api/room/{roomId}/messages"]["get"]
    exploded = [p for p in operation["parameters"] if p.get("explode") and p["in"] == "query"]
    named = {p["name"] for p in operation["parameters"]} - {p["name"] for p in exploded}
    assert "after" not in named and "before" not in named  # both live in the one object
    (page_from,) = exploded
    allowed = jsonschema_rs.Draft4Validator(page_from["schema"]).is_valid(query)
    assert allowed == (answer.status_code == 200), (query, answer.text)
    assert answer.status_code in (200, 422)
