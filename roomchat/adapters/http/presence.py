"""Presence over HTTP, shared by the `rest` and `html` adapters (contract: Presence)."""

from __future__ import annotations

from collections.abc import Mapping

from roomchat.core import ValidationError

_YES = ("1", "true", "yes", "on")
_NO = ("", "0", "false", "no", "off")


def stream_presence(query: Mapping[str, str]) -> tuple[str | None, bool]:
    """A stream's `?userId=` (None when absent or empty) and whether `?presence=` asks for events."""
    user_id = query.get("userId") or None
    wanted = query.get("presence", "").strip().lower()
    if wanted not in _YES and wanted not in _NO:
        raise ValidationError("presence", "presence must be 1 or 0")
    return user_id, wanted in _YES
