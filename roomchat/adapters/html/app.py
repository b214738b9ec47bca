"""The routes of the `html` adapter (contract: HTML adapter, SSE streams)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from roomchat.adapters import AdapterSettings
from roomchat.adapters.html.home import room_list
from roomchat.adapters.html.pages import STATIC, error_page, render, shown
from roomchat.adapters.http.bodies import idempotency_key, message_posted, parse_object, read_body, text_field
from roomchat.adapters.http.errors import EXCEPTION_HANDLERS, BadRequest
from roomchat.adapters.http.identity import identify
from roomchat.adapters.http.presence import stream_presence
from roomchat.adapters.http.security import CorsOrigins, browser_safety
from roomchat.adapters.http.sse import EventStream, resume_id
from roomchat.adapters.http.websocket import websocket_routes
from roomchat.core import BackendUnavailable, Manager, ValidationError, validation
from roomchat.core.errors import Forbidden, Unauthenticated
from roomchat.core.identity import Identity

HISTORY_SHOWN = 100  # messages rendered into the chat page on arrival
_FORM = "application/x-www-form-urlencoded"
_FORM_NAMES = {"userId": "user", "text": "message"}  # the Go server's form fields
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def parse_form(body: bytes) -> dict[str, str]:
    """An urlencoded form; the first value of each field wins."""
    if _BAD_PERCENT.search(body):  # parse_qsl would keep "%ZZ" as it is
        raise BadRequest(400, "body must be a well-formed UTF-8 urlencoded form")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=64)
    except ValueError:  # bad UTF-8, bad percent-encoding, too many fields
        raise BadRequest(400, "body must be a well-formed UTF-8 urlencoded form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _wants_html(request: Request) -> bool:
    return request.headers.get("accept", "").lstrip().startswith("text/html")


def _user_and_text(media: str, body: bytes) -> tuple[Any, str]:
    """The Go server's form (`user`, `message`), or JSON as REST (`userId`, `text` or `data`)."""
    if media == "multipart/form-data":
        raise BadRequest(415, f"send the form as {_FORM}, or JSON")
    if media == _FORM:
        form = parse_form(body)
        user, text = form.get("user"), form.get("message")
        if text is None:
            raise ValidationError("message", "message is required")
        return user, text
    data = parse_object(body)
    user_value, text_value = data.get("userId"), text_field(data)
    if not isinstance(text_value, str):
        raise ValidationError("text", "text is required and must be a string")
    return user_value, text_value


def create_app(manager: Manager, settings: AdapterSettings, cors: CorsOrigins | None = None) -> Starlette:
    """The app; `cors` holds the allowed origins (the adapter's, so a reload can change them)."""
    cors = cors or CorsOrigins(settings.cors_origins)

    async def home(request: Request) -> Response:
        """One page of rooms, those starting with `?q=` if given; `?after=` pages on."""
        prefix, after = request.query_params.get("q", "").strip(), request.query_params.get("after") or None
        needs_token = True  # until an identity says otherwise
        try:
            if prefix:
                validation.room_id(prefix)
            identity = who(request)
            needs_token = not identity.open
            listed = await room_list(manager, identity, prefix, after)
        except ValidationError as exc:
            return error_page(422, "That room name cannot be searched for", exc.message)
        except Unauthenticated:  # no token (or an expired one) where reading needs one
            return render("home.html", rooms=None, needs_token=True, prefix=prefix)
        except BackendUnavailable as exc:
            return error_page(503, "The server cannot reach its storage", str(exc))
        return render(
            "home.html",
            rooms=listed.rooms,
            next=listed.next,
            after=after,
            prefix=prefix,
            needs_token=needs_token,
        )

    async def join(request: Request) -> Response:
        """The home page's form without script: `?room=` to that room's page."""
        room_id = request.query_params.get("room", "").strip()
        try:
            validation.room_id(room_id)
        except ValidationError as exc:
            return error_page(422, "That room name cannot be used", exc.message)
        return RedirectResponse(f"/room/{room_id}", status_code=303)

    async def room_page(request: Request) -> Response:
        room_id = request.path_params["roomId"]
        needs_token = True  # until an identity says otherwise
        try:
            validation.room_id(room_id)  # a bad id is a 422 page, whoever asks
            identity = who(request)
            needs_token = not identity.open
            messages = await manager.history(room_id, HISTORY_SHOWN, identity=identity)
        except ValidationError as exc:
            return error_page(422, "That room name cannot be used", exc.message)
        except Unauthenticated:
            # Under --auth jwt the first visit carries no token (it is in the URL's
            # fragment): the page shows no history and its stream, with the token,
            # replays it.
            messages = []
        except Forbidden as exc:
            return error_page(403, "Your token does not open this room", str(exc))
        except BackendUnavailable as exc:
            return error_page(503, "The server cannot reach its storage", str(exc))
        last_id = messages[-1].id if messages else ""
        return render(
            "room.html",
            room_id=room_id,
            messages=[shown(m) for m in messages],
            last_id=last_id,
            needs_token=needs_token,
        )

    def who(request: Request) -> Identity:
        return identify(manager, request.scope, settings.trust_proxy)

    async def post_message(request: Request) -> Response:
        identity = who(request)  # a bad token is a 401 before the body is read
        media = _media_type(request)
        user, text = _user_and_text(media, await read_body(request, settings.max_body))
        room_id = request.path_params["roomId"]
        try:
            key = idempotency_key(request)
            posted = await manager.submit_once(room_id, user, text, key=key, identity=identity)
        except ValidationError as exc:
            if media == _FORM and exc.field in _FORM_NAMES:  # name the form's field, not JSON's
                name = _FORM_NAMES[exc.field]
                raise ValidationError(name, exc.message.replace(exc.field, name, 1)) from None
            raise
        if media == _FORM and _wants_html(request):  # a browser without script: back to the page
            return RedirectResponse(f"/room/{room_id}", status_code=303)
        return message_posted(posted)

    async def stream(request: Request) -> Response:
        room_id = request.path_params["roomId"]
        after = resume_id(request.scope, dict(request.query_params))
        validation.room_id(room_id)  # a 422 before the stream starts
        user_id, presence = stream_presence(request.query_params)
        stream = EventStream(
            manager, room_id, after, "html", settings.keepalive, who(request),
            user_id=user_id, presence=presence,
        )
        return stream  # type: ignore[return-value]

    async def room_info(request: Request) -> Response:
        info = await manager.room(request.path_params["roomId"], identity=who(request))
        return JSONResponse(info.to_dict())

    async def presence(request: Request) -> Response:
        found = await manager.presence(request.path_params["roomId"], identity=who(request))
        return JSONResponse(found.to_dict())

    async def delete(request: Request) -> Response:
        await manager.delete(request.path_params["roomId"], identity=who(request))
        return JSONResponse({"success": True})

    async def http_error(request: Request, exc: Exception) -> Response:
        """Errors as the contract's JSON, except a page for a browser that asked for one."""
        assert isinstance(exc, HTTPException)
        if request.method in ("GET", "HEAD") and _wants_html(request):
            return error_page(exc.status_code, "Nothing here", str(exc.detail))
        response: Response = await EXCEPTION_HANDLERS[HTTPException](request, exc)
        return response

    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/join", join, methods=["GET"]),
            Route("/room/{roomId}", room_page, methods=["GET"]),
            Route("/room/{roomId}", post_message, methods=["POST"]),
            Route("/room/{roomId}", delete, methods=["DELETE"]),
            Route("/room/{roomId}/info", room_info, methods=["GET"]),
            Route("/room/{roomId}/presence", presence, methods=["GET"]),
            Route("/stream/{roomId}", stream, methods=["GET"]),
            *websocket_routes("/ws", manager, settings),
            # roomchat.js connects to <origin>/api/ws, whichever adapter serves the page.
            *websocket_routes("/api/ws", manager, settings),
            # static/roomchat.js (and .d.ts) link to clients/js/ in a checkout, the one
            # source of the client; a built package holds the file itself.
            Mount("/static", StaticFiles(directory=STATIC, follow_symlink=True), name="static"),
        ],
        exception_handlers={**EXCEPTION_HANDLERS, HTTPException: http_error},
        middleware=[browser_safety(settings, streams=("/stream/",), cors=cors)],
    )
