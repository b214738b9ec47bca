"""roomchat-ndjson: one room per TCP connection, one JSON object per line.

The client's first line chooses the room (and where to resume):
    {"room": "lobby", "lastId": "1795930183203-0"}
Then the server sends each message as one line, and the client may send
    {"userId": "ann", "text": "hello"}
lines to post. The reply to each line (the posted message, or an error) comes back
in the order of the lines. Closing the sending side (a half-close: `printf ... | nc`)
means "no more input": the stream goes on until the room ends or the client hangs
up. Errors come back as {"error": "...", "field": "..."} lines; an idle
stream gets {"event": "keepalive"} lines; the end of the stream is one line
{"event": "deleted" | "lagged" | "shutdown" | "unavailable", "lastId": ...}.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable
from typing import Any, ClassVar

from roomchat.adapters import AdapterSettings, CannotListen, Ready
from roomchat.core import BackendUnavailable, EndReason, Listener, Manager, Message, ValidationError, to_json

KEEPALIVE = b'{"event":"keepalive"}\n'


def ndjson_line(message: Message) -> bytes:
    """The codec: computed once per message, shared by every connection."""
    return message.encode(to_json) + b"\n"


class NdjsonAdapter:
    default_port: ClassVar[int] = 7000

    def __init__(self, manager: Manager, settings: AdapterSettings) -> None:
        self.manager = manager
        self.settings = settings
        self.clients: set[asyncio.Task[None]] = set()

    async def serve(self, ready: Ready, stopping: asyncio.Event) -> None:
        tls = None
        if self.settings.tls_cert:  # --tls-cert/--tls-key: serve TLS, as every adapter does
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        try:
            server = await asyncio.start_server(
                self._track, self.settings.host, self.settings.port, ssl=tls, limit=self.settings.max_body
            )
        except OSError as exc:  # `roomchat: error: ndjson cannot listen on 127.0.0.1:7000: ...`
            raise CannotListen(self.settings.host, self.settings.port, exc) from None
        host, port = server.sockets[0].getsockname()[:2]  # port 0 asked for any free port
        ready(f"{'tls' if tls else 'tcp'}://{f'[{host}]' if ':' in host else host}:{port}")
        async with server:
            await stopping.wait()
        # The runner ends every listener (SHUTDOWN) as it stops: let the clients finish.
        if self.clients:
            await asyncio.wait(self.clients, timeout=3)

    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # asyncio runs each connection in a task of its own
        self.clients.add(task)
        try:
            await self._client(reader, writer)
        except (ConnectionError, EOFError):
            pass  # the client went away
        finally:
            self.clients.discard(task)
            writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await self._read(reader, timeout=self.settings.keepalive)
            if hello is None or not isinstance(hello.get("lastId"), str | None):
                raise _BadLine('the first line must be {"room": "...", "lastId": "..."}')
            async with self.manager.listen(
                hello.get("room", ""), hello.get("lastId"), transport="ndjson"
            ) as listener:
                replies = _Replies()
                posting = asyncio.ensure_future(self._posts(reader, writer, listener, replies))
                try:
                    await self._pump(listener, writer, replies)
                finally:
                    posting.cancel()
        except (_BadLine, ValidationError, BackendUnavailable) as exc:
            writer.write(_error(exc))
        await writer.drain()

    async def _pump(self, listener: Listener, writer: asyncio.StreamWriter, replies: _Replies) -> None:
        if listener.gap is not None:
            gap = listener.gap
            writer.write(_line({"event": "gap", "lastEventId": gap.last_event_id, "oldestId": gap.oldest_id}))
        try:
            while not listener.done:
                if not await listener.wait(self.settings.keepalive):
                    writer.write(KEEPALIVE)  # idle: shows both ends the connection still works
                batch = listener.take()
                if batch:  # everything pending in one write
                    writer.write(b"".join([m.encode(ndjson_line) for m in batch]))
                    replies.written(batch)
                await writer.drain()
        finally:
            replies.written([])  # a post waiting for its message waits no more
        if listener.ended is not None and listener.ended is not EndReason.CLOSED:
            writer.write(_line({"event": listener.ended.value, "lastId": listener.last_id}))

    async def _posts(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        listener: Listener,
        replies: _Replies,
    ) -> None:
        try:
            while True:
                post = await self._read(reader)
                try:
                    if post is None:
                        raise _BadLine("each line must be a JSON object")
                    user, text = post.get("userId", ""), post.get("text", "")
                    submitting = self.manager.submit(listener.room_id, user, text)
                    await replies.posted(submitting, listener)  # this line's reply before the next line
                except (_BadLine, ValidationError, BackendUnavailable) as exc:
                    writer.write(_error(exc))  # this line is refused; the connection goes on
        except EOFError:
            return  # a half-close: no more input, but the client still listens
        except _BadLine as exc:
            writer.write(_error(exc))  # a line too long: answered, then the connection ends
        except ConnectionError:
            pass  # the client hung up
        listener.end(EndReason.CLOSED)

    async def _read(
        self, reader: asyncio.StreamReader, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """The next line as a JSON object (None if it is not one); _BadLine if it cannot be
        read; EOFError once the client has closed its sending side."""
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout)
        except asyncio.IncompleteReadError as exc:  # the input ended: a last line without "\n" counts
            if not exc.partial.strip():
                raise EOFError from None
            line = exc.partial
        except asyncio.LimitOverrunError:
            raise _BadLine(f"a line must be at most {self.settings.max_body} bytes") from None
        except TimeoutError:
            raise _BadLine(f"no first line within {self.settings.keepalive:g} s") from None
        try:
            value = json.loads(line)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class _Replies:
    """Holds the next line back until the message posted by this one has been written,
    so that replies come back in the order of the lines (an error for line 3 never
    overtakes the message of line 2, which reaches the connection through the room)."""

    def __init__(self) -> None:
        self._taken: set[str] | None = None  # ids written since the post in flight was sent
        self._progress = asyncio.Event()

    def written(self, batch: list[Message]) -> None:
        if self._taken is not None:  # only while a post is in flight: nothing grows otherwise
            self._taken.update(m.id for m in batch)
        self._progress.set()

    async def posted(self, submitting: Awaitable[Message], listener: Listener) -> None:
        """Submit, then wait until the pump has written the stored message (or the stream ended)."""
        self._taken = set()
        try:
            message = await submitting
            while message.id not in self._taken and not listener.done:
                self._progress.clear()
                await self._progress.wait()
        finally:
            self._taken = None


class _BadLine(Exception):
    """A line this protocol cannot take."""


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def _error(exc: Exception) -> bytes:
    if isinstance(exc, ValidationError):  # the transport's "invalid argument"
        return _line({"error": exc.message, "field": exc.field})
    if isinstance(exc, BackendUnavailable):  # "unavailable": nothing was stored, try again
        return _line({"error": f"unavailable: {exc}"})
    return _line({"error": str(exc)})
