"""The composition root: settings in, a ready room service out. No work at import."""

from __future__ import annotations

from dataclasses import dataclass

from roomchat.backends import DEFAULT_HISTORY, backend_from_url
from roomchat.core import RoomService
from roomchat.core.ports import Backend
from roomchat.core.service import DEFAULT_BUFFER
from roomchat.core.validation import DEFAULT_MAX_TEXT


@dataclass(frozen=True)
class ServiceSettings:
    backend: str = "memory"
    history: int = DEFAULT_HISTORY
    max_text: int = DEFAULT_MAX_TEXT
    buffer: int = DEFAULT_BUFFER


def build_service(settings: ServiceSettings, backend: Backend | None = None) -> RoomService:
    """A room service over the backend the settings name (or the one given)."""
    if backend is None:
        backend = backend_from_url(settings.backend, settings.history)
    return RoomService(backend, buffer_size=settings.buffer, max_text=settings.max_text)
