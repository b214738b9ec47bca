"""Crash safety of `--backend sqlite:///PATH`, as a user would find it: posts
from several clients, SIGKILL mid-flood, a restart on the same file; every post
answered 2xx is there, in order, with its id, and resuming from any of them
goes on with no gap and no duplicate. Several rounds on one file."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import roomchat_process, stream

ROUNDS = 5
POSTERS = 8
ROOMS = ("crash-a", "crash-b")


async def _flood(url: str, acknowledged: list[dict[str, Any]], stop: asyncio.Event, poster: int) -> None:
    """Post until the server dies; keep each message answered 201."""
    async with httpx.AsyncClient(timeout=5) as http:
        n = 0
        while not stop.is_set():
            room = ROOMS[n % len(ROOMS)]
            try:
                reply = await http.post(
                    f"{url}/api/room/{room}", json={"userId": f"p{poster}", "text": f"{n}"}
                )
            except httpx.HTTPError:
                return  # the server is gone: this post was never acknowledged
            assert reply.status_code == 201, reply.text
            acknowledged.append(reply.json()["message"])
            n += 1


async def _history(http: httpx.AsyncClient, url: str, room: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params = {"limit": "1000", **({"after": after} if after else {})}
        page = (await http.get(f"{url}/api/room/{room}/messages", params=params)).json()["messages"]
        messages += page
        if len(page) < 1000:
            return messages
        after = page[-1]["id"]


@pytest.mark.slow
async def test_nothing_acknowledged_is_lost_by_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    serve = ("--adapter", "rest", "--port", "rest=0", "--backend", f"sqlite:///{db}", "--history", "100000")
    acknowledged: list[dict[str, Any]] = []
    rng = random.Random(14)
    for _ in range(ROUNDS):
        with roomchat_process(*serve) as server:
            url = server.urls["rest"]
            await _check(url, acknowledged, rng)
            stop = asyncio.Event()
            before = len(acknowledged)
            posters = [asyncio.ensure_future(_flood(url, acknowledged, stop, p)) for p in range(POSTERS)]
            async with asyncio.timeout(20):
                while len(acknowledged) < before + 100:  # mid-flood: well under way
                    await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0, 0.2))
            server.proc.kill()
            await asyncio.gather(*posters)
            stop.set()
    with roomchat_process(*serve) as server:
        await _check(server.urls["rest"], acknowledged, rng)
    assert len(acknowledged) >= ROUNDS * 100


async def _check(url: str, acknowledged: list[dict[str, Any]], rng: random.Random) -> None:
    """Every acknowledged post is in history, in id order, and resuming after one misses nothing."""
    async with httpx.AsyncClient(timeout=10) as http:
        for room in ROOMS:
            kept = await _history(http, url, room)
            position = {m["id"]: i for i, m in enumerate(kept)}
            assert len(position) == len(kept), "an id appears twice"
            mine = [m for m in acknowledged if m["roomId"] == room]
            missing = [m for m in mine if m["id"] not in position]
            assert not missing, f"{len(missing)} acknowledged posts lost, e.g. {missing[0]}"
            assert all(kept[position[m["id"]]] == m for m in mine)  # the same message, with its id
            by_poster: dict[str, list[int]] = {}
            for m in mine:
                by_poster.setdefault(m["userId"], []).append(position[m["id"]])
            assert all(p == sorted(p) for p in by_poster.values())  # each client's posts in its order
            for resume in rng.sample(mine, min(3, len(mine))):
                after = position[resume["id"]]
                page = (
                    await http.get(
                        f"{url}/api/room/{room}/messages", params={"after": resume["id"], "limit": "1000"}
                    )
                ).json()["messages"]
                assert page == kept[after + 1 : after + 1001]  # fmt: skip
                async with stream(http, f"{url}/api/stream/{room}", {"Last-Event-ID": resume["id"]}) as sse:
                    replayed = await sse.messages(min(len(kept) - after - 1, 200))
                    assert [e.id for e in replayed] == [m["id"] for m in kept[after + 1 : after + 201]]
