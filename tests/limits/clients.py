"""Clients for limit tests: from a chosen loopback address, and raw HTTP connections to hold open."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx


def client_from(address: str, base_url: str = "", timeout: float = 10) -> httpx.AsyncClient:
    """An httpx client whose connections come from `address` (any of 127.0.0.0/8 is this machine)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeout)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One HTTP/1.1 connection, held open until closed; reads a response head (and a sized body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, base: str, source: str | None = None) -> Connection:
        host, port = base.removeprefix("http://").rsplit(":", 1)
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(host, int(port), local_addr=local)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        """Send a request; its response's head, and its body unless it is a stream (left unread)."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        if body:
            extra += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        self.writer.write(f"{method} {path} HTTP/1.1\r\nhost: test\r\n{extra}\r\n".encode() + body)
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines if line)
        fields = {k.lower(): v for k, v in fields.items()}
        content = b""
        if "content-length" in fields:
            content = await asyncio.wait_for(self.reader.readexactly(int(fields["content-length"])), 10)
        return Answer(int(status_line.split()[1]), fields, content)

    async def closed_by_server(self) -> bool:
        """Whether the server closes the connection (an orderly end, not a reset) within 5 s."""
        return await asyncio.wait_for(self.reader.read(), 5) == b""

    def close(self) -> None:
        self.writer.close()
