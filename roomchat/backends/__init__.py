"""Backends, found by URL scheme through the entry-point group `roomchat.backends`
and imported only when asked for (see `registry` and docs/backends.md)."""

from __future__ import annotations

from roomchat.backends.registry import backend_from_url
from roomchat.core.ports import DEFAULT_HISTORY

__all__ = ["DEFAULT_HISTORY", "backend_from_url"]
