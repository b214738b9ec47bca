"""The composition root: settings in, a ready room service out. No work at import."""

from __future__ import annotations

from dataclasses import dataclass, field

from roomchat.backends import DEFAULT_HISTORY, backend_from_url
from roomchat.core import RoomService
from roomchat.core.identity import Authenticator, OpenAuthenticator
from roomchat.core.limits import DEFAULT_HISTORY_BYTES, DEFAULT_MAX_ROOMS, Limits
from roomchat.core.ports import Backend, BackendSettings, PublishHook
from roomchat.core.presence import HEARTBEAT
from roomchat.core.service import DEFAULT_BUFFER
from roomchat.core.validation import DEFAULT_MAX_TEXT


@dataclass(frozen=True)
class ServiceSettings:
    backend: str = "memory"
    history: int = DEFAULT_HISTORY
    max_text: int = DEFAULT_MAX_TEXT
    buffer: int = DEFAULT_BUFFER
    limits: Limits = field(default_factory=Limits)
    max_rooms: int = DEFAULT_MAX_ROOMS
    history_bytes: int = DEFAULT_HISTORY_BYTES
    auth: Authenticator = field(default_factory=OpenAuthenticator)  # --auth none
    presence_heartbeat: float = HEARTBEAT  # seconds; a dead process's users leave within about 4 of them
    publish_hook: PublishHook | None = None  # asked before every post is stored


def build_service(settings: ServiceSettings, backend: Backend | None = None) -> RoomService:
    """A room service over the backend the settings name (or the one given)."""
    if backend is None:
        backend_settings = BackendSettings(settings.history, settings.max_rooms, settings.history_bytes)
        backend = backend_from_url(settings.backend, backend_settings)
    return RoomService(
        backend,
        buffer_size=settings.buffer,
        max_text=settings.max_text,
        authenticator=settings.auth,
        limits=settings.limits,
        presence_heartbeat=settings.presence_heartbeat,
        publish_hook=settings.publish_hook,
    )
