"""Test helpers: real servers on free ports, and a streaming SSE reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from roomchat.adapters import AdapterSettings
from roomchat.adapters.registry import available
from roomchat.bootstrap import ServiceSettings, build_service
from roomchat.core import RoomService
from roomchat.runner import run


@dataclass
class Running:
    urls: dict[str, str]
    service: RoomService
    stopping: asyncio.Event
    task: asyncio.Task[None]

    def url(self, name: str = "rest") -> str:
        return self.urls[name]

    async def listeners_become(self, room: str, count: int, within: float = 5.0) -> bool:
        """Whether `room` has `count` listeners within `within` seconds.

        Polled: a listener leaves when the server notices a hang-up, which no client sees.
        """
        for _ in range(int(within / 0.02)):
            if (await self.service.room(room)).listeners == count:
                return True
            await asyncio.sleep(0.02)
        return False


@contextlib.asynccontextmanager
async def serve(
    *names: str,
    service_settings: ServiceSettings | None = None,
    **adapter_settings: Any,
) -> AsyncIterator[Running]:
    """Run adapters in this event loop, on free ports, over one fresh service."""
    names = names or ("rest",)
    service = build_service(service_settings or ServiceSettings())
    found = available()
    adapters = {
        name: found[name].load()(service, AdapterSettings(port=0, **adapter_settings)) for name in names
    }
    urls: dict[str, str] = {}
    all_ready = asyncio.Event()

    def ready(name: str, url: str) -> None:
        urls[name] = url
        if len(urls) == len(adapters):
            all_ready.set()

    stopping = asyncio.Event()
    task = asyncio.ensure_future(run(service, adapters, ready, stopping))
    waiter = asyncio.ensure_future(all_ready.wait())
    await asyncio.wait({task, waiter}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert all_ready.is_set(), "adapters did not report listening"
    try:
        yield Running(urls, service, stopping, task)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSE:
    """Reads a real event stream incrementally from an httpx streaming response."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    _lines: AsyncIterator[str] | None = None

    async def next(self, timeout: float = 5.0) -> Event | None:
        """The next event, or None when the stream ended."""
        event = await asyncio.wait_for(self._next(), timeout)
        assert not isinstance(event, str)
        return event

    async def comment(self, timeout: float = 5.0) -> str | None:
        """The next comment line (events before it are skipped), or None at the end."""
        return await asyncio.wait_for(self._next(until_comment=True), timeout)  # type: ignore[return-value]

    async def _next(self, until_comment: bool = False) -> Event | str | None:
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        current = Event()
        seen = False
        async for line in self._lines:
            if line == "":
                if seen:
                    return current
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                if until_comment:
                    return self.comments[-1]
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            seen = True
            if name == "event":
                current.event = value
            elif name == "data":
                current.data = value if not current.data else current.data + "\n" + value
            elif name == "id":
                current.id = value
        return None

    async def messages(self, count: int, timeout: float = 5.0) -> list[Event]:
        got: list[Event] = []
        while len(got) < count:
            ev = await self.next(timeout)
            assert isinstance(ev, Event), f"stream ended after {len(got)} of {count} messages"
            assert ev.event == "message", f"expected a message, got {ev}"
            got.append(ev)
        return got


@contextlib.asynccontextmanager
async def stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SSE]:
    async with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(30, read=None)) as resp:
        assert resp.status_code == 200, resp.status_code
        yield SSE(resp)


@dataclass
class Process:
    proc: subprocess.Popen[str]
    urls: dict[str, str]
    said: list[str] = field(default_factory=list)  # stdout up to the last `listening` line

    def terminate(self, timeout: float = 6.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@contextlib.contextmanager
def roomchat_process(
    *args: str, expect: int = 1, env: dict[str, str] | None = None, command: tuple[str, ...] = ("roomchat",)
) -> Iterator[Process]:
    """`roomchat serve ARGS` as a subprocess; waits for `expect` listening lines.

    `command`: the module to run and its first arguments (a wrapper of the roomchat command).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", *command, "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    urls: dict[str, str] = {}
    said: list[str] = []
    try:
        assert proc.stdout is not None
        while len(urls) < expect:
            line = proc.stdout.readline()
            said.append(line.rstrip("\n"))
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"roomchat exited early: {err}")
            if " listening on " in line:
                head, _, url = line.strip().partition(" listening on ")
                urls[head.removeprefix("roomchat: ")] = url
        yield Process(proc, urls, said)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()


class RawStream:
    """A hand-made HTTP/1.1 SSE client that can be cut at any byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._buffer = b""

    @classmethod
    async def open(cls, base: str, path: str, last_id: str | None = None) -> RawStream:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        extra = f"Last-Event-ID: {last_id}\r\n" if last_id else ""
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        return cls(reader, writer)

    async def chunk(self) -> bytes:
        """The next chunk of the body; b"" at its end."""
        size = int((await self.reader.readline()).strip(), 16)
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    async def events(self, budget: int | None = None) -> list[Event]:
        """Complete events read until `budget` body bytes (then cut) or the end."""
        events: list[Event] = []
        read = 0
        while budget is None or read < budget:
            data = await self.chunk()
            if not data:
                break
            read += len(data)
            self._buffer += data
            *complete, self._buffer = self._buffer.split(b"\n\n")
            for block in complete:
                ev = _parse_block(block.decode())
                if ev is not None:
                    events.append(ev)
        return events

    def cut(self) -> None:
        self.writer.transport.abort()


def _parse_block(block: str) -> Event | None:
    ev = Event()
    seen = False
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        seen = True
        if name == "id":
            ev.id = value
        elif name == "event":
            ev.event = value
        elif name == "data":
            ev.data = value
    return ev if seen else None


class Log:
    """A server's stderr, read line by line as it comes."""

    def __init__(self, server: Process) -> None:
        assert server.proc.stderr is not None
        self._fd = server.proc.stderr.fileno()
        self._lines: list[str] = []  # read, not yet matched
        self._pending = b""

    def wait_for(self, *words: str, timeout: float = 10.0) -> str:
        """The next line holding every word; fails at the deadline."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            while self._lines:
                line = self._lines.pop(0)
                seen.append(line)
                if all(word in line for word in words):
                    return line
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._fd], [], [], max(0.0, left))
            chunk = os.read(self._fd, 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"no log line with {words} within {timeout} s; saw: {seen}")
            *lines, self._pending = (self._pending + chunk).split(b"\n")
            self._lines += [raw.decode(errors="replace") for raw in lines]
