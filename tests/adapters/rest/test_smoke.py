from __future__ import annotations

import httpx

from tests.support import serve, stream


async def test_posted_message_arrives_on_stream(client: httpx.AsyncClient) -> None:
    async with serve("rest") as server:
        base = server.url()
        async with stream(client, f"{base}/api/stream/lobby") as sse:
            r = await client.post(f"{base}/api/room/lobby", json={"userId": "ann", "text": "hello"})
            assert r.status_code == 201
            posted = r.json()["message"]
            [ev] = await sse.messages(1)
            assert ev.id == posted["id"]
            assert ev.json() == posted
