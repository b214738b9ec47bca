"""The `html` adapter on uvicorn."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from roomchat.adapters import AdapterSettings, Ready
from roomchat.adapters.html.app import create_app
from roomchat.adapters.http.security import CorsOrigins
from roomchat.adapters.http.server import serve_asgi
from roomchat.core import Manager


class HtmlAdapter:
    default_port: ClassVar[int] = 8000

    def __init__(self, manager: Manager, settings: AdapterSettings) -> None:
        self.settings = settings
        self.cors = CorsOrigins(settings.cors_origins)
        self.app = create_app(manager, settings, self.cors)

    def reconfigure(self, settings: AdapterSettings) -> None:
        """A reload (SIGHUP): the allowed origins change for the next request; streams go on."""
        self.cors.replace(settings.cors_origins)

    async def serve(self, ready: Ready, stopping: asyncio.Event) -> None:
        await serve_asgi(self.app, self.settings, ready, stopping)
