"""A roomchat.v1 WebSocket client for tests, over the `websockets` library."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

SUBPROTOCOL = "roomchat.v1"


def ws_url(base: str, path: str = "/api/ws") -> str:
    return base.replace("http://", "ws://", 1) + path


class Ws:
    """Sends frames as keyword arguments and reads them back as dicts."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    async def send(self, **frame: Any) -> None:
        await self.connection.send(json.dumps(frame))

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        assert isinstance(raw, str), f"a binary frame from the server: {raw!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict)
        return frame

    async def ask(self, timeout: float = 5.0, **frame: Any) -> dict[str, Any]:
        """Send a frame and read the next one."""
        await self.send(**frame)
        return await self.next(timeout)

    async def subscribe(self, room_id: str, **extra: Any) -> None:
        answer = await self.ask(type="subscribe", roomId=room_id, **extra)
        assert answer == {"type": "subscribed", "roomId": room_id}, answer

    async def messages(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The next `count` frames, each a `message`; their messages."""
        got = []
        for _ in range(count):
            frame = await self.next(timeout)
            assert frame["type"] == "message", frame
            got.append(frame["message"])
        return got

    async def closed_with(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; its close code."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                while True:
                    await self.connection.recv()
        await asyncio.wait_for(self.connection.wait_closed(), timeout)
        received = self.connection.protocol.close_rcvd
        return received.code if received is not None else None


@contextlib.asynccontextmanager
async def ws_connect(base: str, path: str = "/api/ws", **options: Any) -> AsyncIterator[Ws]:
    options.setdefault("subprotocols", [SUBPROTOCOL])
    options.setdefault("open_timeout", 5)
    async with connect(ws_url(base, path), **options) as connection:
        yield Ws(connection)
