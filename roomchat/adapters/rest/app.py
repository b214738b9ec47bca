"""The routes of the `rest` adapter (contract: REST adapter, SSE streams)."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from roomchat.adapters import AdapterSettings
from roomchat.adapters.http.bodies import (
    idempotency_key,
    message_posted,
    messages_page,
    parse_object,
    read_body,
    text_field,
    whole_number,
)
from roomchat.adapters.http.errors import EXCEPTION_HANDLERS
from roomchat.adapters.http.identity import identify
from roomchat.adapters.http.metrics import metrics_endpoint
from roomchat.adapters.http.presence import stream_presence
from roomchat.adapters.http.security import CorsOrigins, browser_safety
from roomchat.adapters.http.sse import EventStream, resume_id
from roomchat.adapters.http.websocket import websocket_routes
from roomchat.adapters.rest.openapi import OPENAPI
from roomchat.core import Manager, validation
from roomchat.core.errors import ValidationError
from roomchat.core.identity import Identity
from roomchat.core.service import DEFAULT_ROOM_PAGE

_STATIC = Path(__file__).parent / "static"
_DOCS = _STATIC / "docs.html"


def create_app(manager: Manager, settings: AdapterSettings, cors: CorsOrigins | None = None) -> Starlette:
    """The app; `cors` holds the allowed origins (the adapter's, so a reload can change them)."""
    cors = cors or CorsOrigins(settings.cors_origins)

    def who(request: Request) -> Identity:
        return identify(manager, request.scope, settings.trust_proxy)

    async def post_message(request: Request) -> Response:
        identity = who(request)  # a bad token is a 401 before the body is read
        body = parse_object(await read_body(request, settings.max_body))
        user = body.get("userId")
        text = text_field(body)
        if not isinstance(text, str):
            raise ValidationError("text", "text is required and must be a string")
        room_id, key = request.path_params["roomId"], idempotency_key(request)
        posted = await manager.submit_once(room_id, user, text, key=key, identity=identity)
        return message_posted(posted)

    async def stream(request: Request) -> Response:
        room_id = request.path_params["roomId"]
        after = resume_id(request.scope, dict(request.query_params))
        validation.room_id(room_id)  # a 422 before the stream starts
        user_id, presence = stream_presence(request.query_params)
        stream = EventStream(
            manager, room_id, after, "sse", settings.keepalive, who(request),
            user_id=user_id, presence=presence,
        )
        return stream  # type: ignore[return-value]

    async def history(request: Request) -> Response:
        query = request.query_params
        messages = await manager.history(
            request.path_params["roomId"],
            whole_number(query, "limit", 50),
            query.get("after") or None,
            query.get("before") or None,
            identity=who(request),
        )
        return messages_page(messages)

    async def room(request: Request) -> Response:
        info = await manager.room(request.path_params["roomId"], identity=who(request))
        return JSONResponse(info.to_dict())

    async def presence(request: Request) -> Response:
        found = await manager.presence(request.path_params["roomId"], identity=who(request))
        return JSONResponse(found.to_dict())

    async def rooms(request: Request) -> Response:
        query = request.query_params
        limit = whole_number(query, "limit", DEFAULT_ROOM_PAGE)
        page = await manager.rooms(limit, query.get("after") or None, identity=who(request))
        return JSONResponse(page.to_dict())

    async def delete(request: Request) -> Response:
        await manager.delete(request.path_params["roomId"], identity=who(request))
        return JSONResponse({"success": True})

    async def healthz(request: Request) -> Response:
        if await manager.healthy():
            return JSONResponse({"status": "ok", "backend": "ok"})
        return JSONResponse({"status": "unavailable", "backend": "unreachable"}, 503)

    async def openapi(request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def docs(request: Request) -> Response:
        return FileResponse(_DOCS, media_type="text/html")

    return Starlette(
        routes=[
            Route("/api/room/{roomId}", post_message, methods=["POST"]),
            Route("/api/room/{roomId}", room, methods=["GET"]),
            Route("/api/room/{roomId}", delete, methods=["DELETE"]),
            Route("/api/room/{roomId}/messages", history, methods=["GET"]),
            Route("/api/room/{roomId}/presence", presence, methods=["GET"]),
            Route("/api/stream/{roomId}", stream, methods=["GET"]),
            Route("/api/rooms", rooms, methods=["GET"]),
            *websocket_routes("/api/ws", manager, settings),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint(manager), methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            Mount("/static", StaticFiles(directory=_STATIC), name="static"),  # /docs's script and style
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[browser_safety(settings, streams=("/api/stream/",), cors=cors)],
    )
