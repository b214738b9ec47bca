"""The adapter interface: how a transport exposes the Manager.

Built-in and third-party adapters alike are found through the entry-point group
`roomchat.adapters` (see `roomchat.adapters.registry` and docs/plugins.md).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from roomchat.core.ports import Manager

DEFAULT_CONNECTIONS_PER_IP = 256
"""Open connections one peer address may hold on each of HTTP and gRPC (`--max-connections-per-ip`)."""

Ready = Callable[[str], None]
"""Called once by an adapter with the URL it is listening on."""


@dataclass(frozen=True)
class AdapterSettings:
    """What the command line gives every adapter."""

    host: str = "127.0.0.1"
    port: int = 0
    tls_cert: str | None = None
    tls_key: str | None = None
    keepalive: float = 15.0  # seconds between keepalives on an idle stream
    max_body: int = 64 * 1024
    options: Mapping[str, str] = field(default_factory=dict)
    trust_proxy: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For names the real client
    cors_origins: tuple[str, ...] = ()  # origins allowed to post and delete from a browser
    reuse_port: bool = False  # bind with SO_REUSEPORT: `serve --workers N` processes share the port
    max_connections_per_ip: int = DEFAULT_CONNECTIONS_PER_IP  # per peer address; 0: no cap
    access_log: bool = False  # log every HTTP request (`--access-log`)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def tls_files(self) -> tuple[bytes, bytes]:
        """The certificate chain and key, read now; OSError naming the file that cannot be read."""
        assert self.tls_cert is not None and self.tls_key is not None
        read: list[bytes] = []
        for what, path in (("certificate", self.tls_cert), ("key", self.tls_key)):
            try:
                with open(path, "rb") as f:
                    read.append(f.read())
            except OSError as exc:
                raise OSError(exc.errno, f"cannot read the TLS {what} {path}: {exc.strerror}") from None
        return read[0], read[1]


class CannotListen(OSError):
    """An adapter cannot bind its address; the runner says `<name> cannot listen on HOST:PORT: <why>`."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        # The OS's reason alone: asyncio's strerror repeats the address in its own words.
        why = os.strerror(cause.errno) if cause.errno else cause.strerror or str(cause)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        super().__init__(cause.errno, f"cannot listen on {address}: {why[:1].lower()}{why[1:]}")


class Adapter(Protocol):
    async def serve(self, ready: Ready, stopping: asyncio.Event) -> None:
        """Bind, call ready(url), serve until `stopping` is set, drain, return.

        Raise CannotListen (or any exception with a clear message) if it cannot bind.
        """
        ...


class AdapterFactory(Protocol):
    """What an entry point in `roomchat.adapters` loads: usually the adapter class."""

    default_port: ClassVar[int]

    def __call__(self, manager: Manager, settings: AdapterSettings) -> Adapter: ...


__all__ = ["Adapter", "AdapterFactory", "AdapterSettings", "CannotListen", "Ready"]
