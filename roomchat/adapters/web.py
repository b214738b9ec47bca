"""What the Starlette adapters share: contract errors as JSON and bounded bodies."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from roomchat.core import BackendUnavailable, ValidationError, validation

log = logging.getLogger("roomchat.http")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not validation.is_whole_number(declared):
            raise BadRequest(400, "Content-Length must be a number")
        if int(declared) > limit:
            raise BadRequest(413, f"body must be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        # UTF-8 only (json.loads would guess UTF-16/32 from bytes) and no NaN/Infinity.
        value = json.loads(body.decode("utf-8"), parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise BadRequest(400, "body must be a well-formed JSON object") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "body must be a JSON object")
    return value


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    # After a 413 the rest of the body is not worth reading: close the connection.
    return error(exc.status, exc.message, {"connection": "close"} if exc.status == 413 else None)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return error(422, exc.message)


async def _unavailable(request: Request, exc: Exception) -> Response:
    return error(503, f"backend unavailable: {exc}")


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, dict(exc.headers) if exc.headers else None)


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
    HTTPException: _http,
    ClientDisconnect: _gone,
    Exception: _unexpected,
}
