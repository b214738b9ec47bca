"""Request and response bodies every HTTP adapter shares: bounded reads, JSON, messages."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from roomchat.adapters.http.errors import BadRequest
from roomchat.core import Message, Posted, ValidationError, to_json, validation


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not validation.is_whole_number(declared):
            raise BadRequest(400, "Content-Length must be a number")
        if validation.bounded_whole_number(declared, limit) is None:  # over the limit, however long
            raise BadRequest(413, f"body must be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def whole_number(query: Mapping[str, str], name: str, default: int, low: int = 1, high: int = 1000) -> int:
    """A query parameter that must be a whole number in [low, high]; its digits are
    counted before `int` reads them, so a huge one is a 422, not Python's digit limit."""
    raw = query.get(name)
    if raw is None:
        return default
    number = validation.bounded_whole_number(raw, high)
    if number is None or number < low:
        raise ValidationError(name, f"{name} must be a whole number from {low} to {high}")
    return number


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def parse_object(body: bytes, what: str = "body") -> dict[str, Any]:
    try:
        # UTF-8 only (json.loads would guess UTF-16/32 from bytes) and no NaN/Infinity.
        value = json.loads(body.decode("utf-8"), parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise BadRequest(400, f"{what} must be a well-formed JSON object") from None
    if not isinstance(value, dict):
        raise BadRequest(400, f"{what} must be a JSON object")
    return value


def message_created(message: Message) -> Response:
    return message_posted(Posted(message))


def message_posted(posted: Posted) -> Response:
    """201 for a stored message; 200 and `Idempotent-Replayed: true` for a retry's first message."""
    body = b'{"success":true,"message":%s}' % posted.message.encode(to_json)
    if posted.replayed:
        return Response(body, media_type="application/json", headers={"idempotent-replayed": "true"})
    return Response(body, status_code=201, media_type="application/json")


def idempotency_key(request: Request) -> str | None:
    """The `Idempotency-Key` header (contract: Publishing exactly once); checked by the core."""
    return request.headers.get("idempotency-key")


def messages_page(messages: list[Message]) -> Response:
    body = b'{"messages":[%s]}' % b",".join([m.encode(to_json) for m in messages])
    return Response(body, media_type="application/json")


def text_field(body: dict[str, object]) -> object:
    """`text`, or the Go server's `data` in its place; a `data` beside `text` must still be a string."""
    if "data" in body and not isinstance(body["data"], str):
        raise ValidationError("data", "data must be a string (the text, in the Go server's field)")
    return body["text"] if "text" in body else body.get("data")


