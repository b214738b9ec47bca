"""roomchat-ndjson: one room per TCP connection, one JSON object per line.

The client's first line chooses the room (and where to resume):
    {"room": "lobby", "lastId": "1795930183203-0"}
Then the server sends each message as one line, and the client may send
    {"userId": "ann", "text": "hello"}
lines to post. Errors come back as {"error": "...", "field": "..."} lines;
the end of the stream as {"event": "deleted" | "lagged" | "shutdown", ...}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, ClassVar

from roomchat.adapters import AdapterSettings, Ready
from roomchat.core import BackendUnavailable, EndReason, Listener, Manager, Message, ValidationError, to_json


def ndjson_line(message: Message) -> bytes:
    """The codec: computed once per message, shared by every connection."""
    return message.encode(to_json) + b"\n"


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode() + b"\n"


class NdjsonAdapter:
    default_port: ClassVar[int] = 7000

    def __init__(self, manager: Manager, settings: AdapterSettings) -> None:
        self.manager = manager
        self.settings = settings
        self.clients: set[asyncio.Task[None]] = set()

    async def serve(self, ready: Ready, stopping: asyncio.Event) -> None:
        server = await asyncio.start_server(self._track, self.settings.host, self.settings.port)
        host, port = server.sockets[0].getsockname()[:2]
        ready(f"tcp://{host}:{port}")
        async with server:
            await stopping.wait()
        # The runner ends every listener (SHUTDOWN) as it stops: let the clients finish.
        if self.clients:
            await asyncio.wait(self.clients, timeout=3)

    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.clients.add(task)
        try:
            await self._client(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            self.clients.discard(task)
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = _parse(await reader.readline())
        if hello is None or not isinstance(hello.get("room"), str):
            writer.write(_line({"error": 'first line must be {"room": "...", "lastId": "..."}'}))
            return
        try:
            async with self.manager.listen(
                hello["room"], hello.get("lastId"), transport="ndjson"
            ) as listener:
                posting = asyncio.ensure_future(self._posts(reader, writer, listener))
                try:
                    await self._pump(listener, writer)
                finally:
                    posting.cancel()
        except ValidationError as exc:
            writer.write(_line({"error": exc.message, "field": exc.field}))
        except BackendUnavailable as exc:
            writer.write(_line({"error": f"unavailable: {exc}"}))
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    async def _pump(self, listener: Listener, writer: asyncio.StreamWriter) -> None:
        if listener.gap is not None:
            gap = listener.gap
            writer.write(_line({"event": "gap", "lastEventId": gap.last_event_id, "oldestId": gap.oldest_id}))
        while True:
            await listener.wait()
            batch = listener.take()
            if batch:  # everything pending in one write
                writer.write(b"".join([m.encode(ndjson_line) for m in batch]))
                await writer.drain()
            if listener.done:
                break
        if listener.ended is not EndReason.CLOSED:
            writer.write(
                _line(
                    {"event": listener.ended.value if listener.ended else "end", "lastId": listener.last_id}
                )
            )

    async def _posts(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener: Listener
    ) -> None:
        while line := await reader.readline():
            post = _parse(line)
            if post is None:
                writer.write(_line({"error": "each line must be a JSON object"}))
                continue
            try:
                await self.manager.submit(listener.room_id, post.get("userId"), post.get("text"))  # type: ignore[arg-type]
            except ValidationError as exc:
                writer.write(_line({"error": exc.message, "field": exc.field}))
            except BackendUnavailable as exc:
                writer.write(_line({"error": f"unavailable: {exc}"}))
        listener.end(EndReason.CLOSED)  # the client hung up


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
