"""An app's backend on 127.0.0.1, as the tests' receiver of roomchat's signed requests.

Runs uvicorn in the test's own event loop; `answer` decides each reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

Answer = Callable[[dict[str, Any]], Awaitable[Response]]


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    answer: Answer
    received: list[Received] = field(default_factory=list)


def allow(text: str | None = None) -> Answer:
    async def answer(asked: dict[str, Any]) -> Response:
        return JSONResponse({"allow": True} if text is None else {"allow": True, "text": text})

    return answer


def refuse(reason: str) -> Answer:
    async def answer(asked: dict[str, Any]) -> Response:
        return JSONResponse({"allow": False, "reason": reason})

    return answer


def hang(seconds: float) -> Answer:
    async def answer(asked: dict[str, Any]) -> Response:
        await asyncio.sleep(seconds)  # the behaviour under test: a hook that does not answer in time
        return JSONResponse({"allow": True})

    return answer


def status(code: int) -> Answer:
    async def answer(asked: dict[str, Any]) -> Response:
        return Response("no", status_code=code)

    return answer


@contextlib.asynccontextmanager
async def receiver(answer: Answer) -> AsyncIterator[Receiver]:
    """A receiver at http://127.0.0.1:<free port>/hook until the block ends."""
    state = Receiver("", answer)

    async def hook(request: Request) -> Response:
        body = await request.body()
        state.received.append(Received(body, dict(request.headers)))
        return await state.answer(json.loads(body))

    async with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        state.url = f"{base}/hook"
        yield state


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """An ASGI app on uvicorn at http://127.0.0.1:<free port> until the block ends."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:
            await asyncio.sleep(0.01)  # uvicorn gives no event for "bound"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
