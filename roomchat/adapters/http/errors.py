"""Contract errors as JSON, for every Starlette adapter: domain errors translated at the edge."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from roomchat.core import BackendUnavailable, ValidationError
from roomchat.core.errors import Forbidden, Overloaded, RateLimited, Unauthenticated, Unavailable

log = logging.getLogger("roomchat.http")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    # After a 413 the rest of the body is not worth reading: close the connection.
    return error(exc.status, exc.message, {"connection": "close"} if exc.status == 413 else None)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return error(422, exc.message)


async def _unauthenticated(request: Request, exc: Exception) -> Response:
    return error(401, str(exc), {"www-authenticate": 'Bearer realm="roomchat"'})


async def _forbidden(request: Request, exc: Exception) -> Response:
    return error(403, str(exc))


async def _rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    return error(429, str(exc), {"retry-after": str(exc.retry_seconds)})


async def _overloaded(request: Request, exc: Exception) -> Response:
    return error(503, str(exc), {"retry-after": "1"})


async def _unavailable(request: Request, exc: Exception) -> Response:
    return error(503, f"backend unavailable: {exc}")


async def _cannot_answer(request: Request, exc: Exception) -> Response:
    return error(503, str(exc))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:  # Starlette names only the methods of the first route that matched
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error(exc.status_code, exc.detail, headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on this path."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(request.url.path):
            methods |= route.methods
    return sorted(methods)


async def _gone(request: Request, exc: Exception) -> Response:
    """The client left (or was timed out) before its body arrived: nothing to answer, nothing to log."""
    return Response(status_code=400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error(500, "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    BadRequest: _bad_request,
    ValidationError: _invalid,
    BackendUnavailable: _unavailable,
    Unavailable: _cannot_answer,
    Unauthenticated: _unauthenticated,
    Forbidden: _forbidden,
    RateLimited: _rate_limited,
    Overloaded: _overloaded,
    HTTPException: _http,
    ClientDisconnect: _gone,
    Exception: _unexpected,
}
