"""For the client's tests: a `roomchat serve` that restarts on the same port, and a cuttable proxy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """`roomchat serve --adapter rest` on one fixed port, stopped and started again at will."""

    def __init__(self, *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.args = args
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roomchat", "serve", "--adapter", "rest", "--port", f"rest={self.port}",
             *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "ROOMCHAT_LOG_LEVEL": "warning"},
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if " listening on " in line:
                return
        raise AssertionError(f"roomchat serve exited early ({self.proc.wait()})")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(signal.SIGKILL)


def sqlite_server(tmp: Path, *args: str) -> Server:
    return Server("--backend", f"sqlite:///{tmp / 'rooms.db'}", *args)


class Proxy:
    """A TCP proxy in front of a server: `cut()` drops every connection; `hold` refuses new ones;
    `drop_acks` cuts a connection instead of passing on a server frame that holds an ack."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.hold = False
        self.drop_acks = 0  # how many acks to lose (each cuts its connection)
        self.busy = 0  # how many connections to answer `408` as a server too busy to read them
        self.connections = 0
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()

    def cut(self) -> None:
        for client, upstream in list(self._pairs):
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.hold:
            writer.transport.abort()
            return
        if self.busy:
            self.busy -= 1
            body = b'{"code":408,"message":"request headers not received in time"}'
            head = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
            writer.write(head + b"content-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            writer.close()
            return
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pair = (writer, up_writer)
        self._pairs.add(pair)
        await asyncio.gather(
            self._pipe(reader, up_writer, pair, upstream=False),
            self._pipe(up_reader, writer, pair, upstream=True),
            return_exceptions=True,
        )
        self._pairs.discard(pair)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        upstream: bool,
    ) -> None:
        while data := await reader.read(65536):
            if upstream and self.drop_acks and b'"type":"ack"' in data:
                self.drop_acks -= 1
                for w in pair:
                    w.transport.abort()
                return
            writer.write(data)
            await writer.drain()
        writer.close()


async def until(check: Callable[[], bool], within: float, what: str) -> None:
    """Wait (polling every 20 ms) until `check()` holds; fail after `within` seconds."""
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.02)
    assert check(), what


@contextlib.asynccontextmanager
async def reading(subscription: AsyncIterator[T]) -> AsyncIterator[list[T]]:
    """Collect a subscription's events into a list in the background."""
    got: list[T] = []

    async def read() -> None:
        async for event in subscription:
            got.append(event)

    task = asyncio.create_task(read())
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def retried(post: Callable[[], Awaitable[int]], within: float = 30) -> None:
    """Call `post` until it answers 200 or 201 (retrying refused connections and 503s)."""
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(httpx.TransportError):
                if await post() in (200, 201):
                    return
            await asyncio.sleep(0.05)
