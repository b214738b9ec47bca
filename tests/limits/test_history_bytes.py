"""--history-bytes through the command line: past it the oldest messages of the least
recently active room go first, and resuming from one of them gives `gap`."""

from __future__ import annotations

import httpx

from tests.support import roomchat_process, stream


async def post(client: httpx.AsyncClient, room: str, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        answer = await client.post(f"/api/room/{room}", json={"userId": "u", "text": "x" * 1000})
        assert answer.status_code == 201
        ids.append(answer.json()["message"]["id"])
    return ids


async def kept(client: httpx.AsyncClient, room: str) -> list[str]:
    return [m["id"] for m in (await client.get(f"/api/room/{room}/messages?limit=1000")).json()["messages"]]


async def test_past_history_bytes_the_least_recently_active_room_loses_its_oldest_first() -> None:
    # 64 KiB holds a score of 1000-character texts (each counted with the memory it takes).
    with roomchat_process("--adapter", "rest", "--port", "rest=0", "--history-bytes", "64KiB") as server:
        base = server.urls["rest"]
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            old = await post(client, "old", 12)
            assert await kept(client, "old") == old  # within the budget so far
            new = await post(client, "new", 8)  # now past it
            kept_old = await kept(client, "old")
            assert 0 < len(kept_old) < len(old)
            assert kept_old == old[len(old) - len(kept_old) :]  # its oldest went, the rest in order
            assert await kept(client, "new") == new  # the active room kept all

            async with stream(client, f"{base}/api/stream/old", {"Last-Event-ID": old[0]}) as events:
                gap = await events.next()
                assert gap is not None and gap.event == "gap"
                assert gap.json() == {"lastEventId": old[0], "oldestId": kept_old[0]}
        assert server.terminate() == 0
