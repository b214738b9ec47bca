"""Backends, chosen by URL scheme and imported only when asked for."""

from __future__ import annotations

from roomchat.core.ports import DEFAULT_HISTORY, Backend, BackendSettings


def backend_from_url(url: str, settings: BackendSettings | None = None) -> Backend:
    """`memory` (or `memory://`) keeps everything in this process;
    `redis://` and `rediss://` share rooms between processes."""
    settings = settings or BackendSettings()
    scheme = url.partition("://")[0] if "://" in url else url
    if scheme == "memory":
        from roomchat.backends.memory import MemoryBackend

        return MemoryBackend(url, settings)
    if scheme in ("redis", "rediss"):
        from roomchat.backends.redis import RedisBackend  # type: ignore[import-not-found,unused-ignore]

        backend: Backend = RedisBackend(url, settings)
        return backend
    raise ValueError(f"unknown backend {url!r}: use memory or redis://HOST:PORT/DB")


__all__ = ["DEFAULT_HISTORY", "backend_from_url"]
