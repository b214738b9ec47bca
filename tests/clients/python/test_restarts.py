"""The client across a server killed (SIGTERM, SIGKILL) and restarted on the same port, many times."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest
from roomchat_client import Client, Gap, Message

from tests.clients.python.support import Server, reading, retried, sqlite_server, until

ROUNDS = 8  # restarts, alternating SIGTERM and SIGKILL
ROOM = "restarts"


class Poster:
    """Posts numbered messages over REST one after another, each retried with its idempotency key
    until stored, whatever the server is doing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: list[str] = []
        self.stopping = False

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            n = 0
            while not self.stopping:
                text = f"rest-{n}"

                async def once(text: str = text) -> int:
                    headers = {"Idempotency-Key": text}
                    body = {"userId": "poster", "text": text}
                    return (await http.post(f"/api/room/{ROOM}", json=body, headers=headers)).status_code

                await retried(once)
                self.sent.append(text)
                n += 1
                await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_every_message_arrives_once_in_order_across_killed_and_restarted_servers(
    tmp_path: Path,
) -> None:
    server = sqlite_server(tmp_path)
    published: list[Message] = []
    with server:
        async with Client(server.url, user_id="ann") as client:
            subscription = await client.subscribe(ROOM)
            async with reading(subscription) as got:
                poster = Poster(server.url)
                posting = asyncio.create_task(poster.run())
                await until(lambda: len(got) >= 5, 10, "messages before the first restart")
                for round_ in range(ROUNDS):
                    server.stop(signal.SIGKILL if round_ % 2 else signal.SIGTERM)
                    await until(lambda: not client.connected, 5, "the client saw the server go")
                    # a publish started while the server is down, finished after it is back
                    publishing = asyncio.create_task(client.publish(ROOM, f"ws-{round_}", timeout=30))
                    await asyncio.sleep(0.2)  # not a synchronisation: the server stays down a while
                    assert not publishing.done()
                    server.start()
                    published.append(await publishing)
                    last = poster.sent[-1]
                    await until(lambda: _texts(got).count(last) == 1, 15, "caught up")  # noqa: B023
                poster.stopping = True
                await posting
                await until(lambda: len(_texts(got)) == len(poster.sent) + ROUNDS, 15, "all of them")
            history = await client.history(ROOM, limit=1000)
    assert not [e for e in got if isinstance(e, Gap)]
    assert got == history  # every stored message, once each, in the room's order
    texts = _texts(got)
    assert sorted(texts) == sorted(poster.sent + [f"ws-{r}" for r in range(ROUNDS)])
    assert [t for t in texts if t.startswith("rest-")] == poster.sent
    assert published == [m for m in got if m.text.startswith("ws-")]


def _texts(events: list[object]) -> list[str]:
    return [e.text for e in events if isinstance(e, Message)]


async def test_a_restart_that_lost_history_gives_a_gap(tmp_path: Path) -> None:
    with Server() as server:  # memory: a restart forgets everything
        async with Client(server.url) as client, httpx.AsyncClient() as http:
            subscription = await client.subscribe("forgetful")
            async with reading(subscription) as got:
                url = f"{server.url}/api/room/forgetful"
                r = await http.post(url, json={"userId": "a", "text": "before"})
                await until(lambda: len(got) == 1, 5, "the first message")
                server.stop(signal.SIGKILL)
                server.start()
                await until(lambda: client.connected, 15, "reconnected")
                await until(lambda: len(got) == 2, 5, "a gap")
                r2 = await http.post(url, json={"userId": "a", "text": "after"})
                await until(lambda: len(got) == 3, 5, "the message after the restart")
    before, after = r.json()["message"], r2.json()["message"]
    assert got[1] == Gap("forgetful", before["id"], None)
    assert _texts(got) == ["before", "after"] and after["text"] == "after"
