"""`python -m tests.limits.flooder BASE ROOM SECONDS`: posts to ROOM from 127.0.0.2 as fast as
8 kept-alive connections can for SECONDS, then prints {"answers": {status: count}, "ids": [...]}
(the ids of the posts accepted)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

from tests.limits.clients import Connection

CONNECTIONS = 8


async def flood(base: str, room: str, seconds: float) -> dict[str, object]:
    answers: Counter[int] = Counter()
    ids: list[str] = []
    deadline = time.monotonic() + seconds
    body = json.dumps({"userId": "flood", "text": "f"}).encode()

    async def one_connection() -> None:
        connection = await Connection.open(base, "127.0.0.2")
        try:
            while time.monotonic() < deadline:
                answer = await connection.request("POST", f"/api/room/{room}", body)
                answers[answer.status] += 1
                if answer.status == 201:
                    ids.append(answer.json()["message"]["id"])
        finally:
            connection.close()

    await asyncio.gather(*(one_connection() for _ in range(CONNECTIONS)))
    return {"answers": dict(answers), "ids": ids}


if __name__ == "__main__":
    base, room, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    print(json.dumps(asyncio.run(flood(base, room, seconds))))
