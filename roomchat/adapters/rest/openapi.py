"""The OpenAPI 3 document of the `rest` adapter, served at /openapi.json.

It is exact: every status a route can answer, with its body and headers, and
the contract's rules as patterns, so that a schemathesis run against the
server (tests/adapters/rest/test_openapi.py) finds the two in agreement.
"""

from __future__ import annotations

from typing import Any

from roomchat import __version__
from roomchat.core.presence import DEFAULT_PAGE as PRESENCE_PAGE
from roomchat.core.service import DEFAULT_ROOM_PAGE, MAX_PAGE
from roomchat.core.validation import DEFAULT_MAX_TEXT, MAX_ID

ROOM_ID = r"^[A-Za-z0-9._-]{1,64}$"
# "." and ".." are room ids too, but no HTTP client can put them in a path.
_ROOM_IN_PATH = r"^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$"
_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"
# 1-64 characters once trimmed, no control characters, no bidirectional overrides or isolates.
_USER_ID = r"^\s*(?=\S)[^\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]{1,64}\s*$"
_TEXT = r"^[^\x00]*[^\s\x00][^\x00]*$"  # not only whitespace, no NUL
_TEXT_SCHEMA = {
    "type": "string",
    "pattern": _TEXT,
    "minLength": 1,
    "maxLength": DEFAULT_MAX_TEXT,
    "description": f"At most --max-text characters (default {DEFAULT_MAX_TEXT})",
}


# An empty `after` or `before` is the same as none.
_OPTIONAL_ID = {"type": "string", "pattern": r"^([0-9]+-[0-9]+)?$", "maxLength": 42}


# `after` and `before` as one exploded object, `?after=ID` or `?before=ID`: OpenAPI 3.0 has no
# other way to say "not both" (both non-empty is a 422; an empty one is the same as none).
_PAGE_FROM = {
    "name": "from",
    "in": "query",
    "style": "form",
    "explode": True,
    "required": False,
    "schema": {
        "type": "object",
        "properties": {
            "after": {**_OPTIONAL_ID, "description": "Messages after this id (not with `before`)"},
            "before": {**_OPTIONAL_ID, "description": "Messages before this id (not with `after`)"},
        },
        "not": {
            "required": ["after", "before"],
            "properties": {"after": {"minLength": 1}, "before": {"minLength": 1}},
        },
    },
    "description": "`after=ID` or `before=ID`, not both (both is a 422)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "string"}}


_ERRORS: dict[str, dict[str, Any]] = {
    "400": _json(_ref("Error"), "Malformed JSON, or a Content-Length that is not a number"),
    "401": _json(
        _ref("Error"),
        "No token, or a bad or expired one (`--auth jwt`)",
        {"WWW-Authenticate": _header("`Bearer`, with the reason")},
    ),
    "403": _json(_ref("Error"), "The token does not allow this, or a cross-site browser request"),
    "413": _json(_ref("Error"), "Body larger than 64 KiB"),
    "422": _json(_ref("Error"), "A field breaks a rule; the message names it"),
    "429": _json(
        _ref("Error"),
        "Over a rate limit (`--rate`, `--max-streams-per-ip`)",
        {"Retry-After": _header("Seconds to wait")},
    ),
    "503": _json(_ref("Error"), "Backend unreachable (nothing was stored), or a server-wide limit reached"),
}


def _answers(success: dict[str, Any], *statuses: str) -> dict[str, Any]:
    return {**success, **{status: _ERRORS[status] for status in statuses}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_ROOM = {
    "name": "roomId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": _ROOM_IN_PATH, "minLength": 1, "maxLength": MAX_ID},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "1-64 printable ASCII characters. A retry with the same key (same user and room, "
    "within 24 h) stores nothing and answers the first message: 200 and `Idempotent-Replayed: true`.",
    "schema": {"type": "string", "pattern": "^[ -~]{1,64}$"},
}
_READ = ("401", "403", "422", "503")

def _probe(summary: str, schema: str, ok: str, not_ok: str) -> dict[str, Any]:
    """An operator's probe: 200 or 503, the same body either way."""
    answers = {"200": _json(_ref(schema), ok), "503": _json(_ref(schema), not_ok)}
    return {"get": {"summary": summary, "responses": answers}}


# The WebSocket in words: OpenAPI 3.0 cannot describe its frames (docs/websocket.md has all of it).
_WEBSOCKET = """Upgrade with `Sec-WebSocket-Protocol: roomchat.v1` (in a browser
`new WebSocket(url, "roomchat.v1")`); an upgrade without it is 400. JSON text frames, one object each:

- `{"type": "subscribe", "roomId", "lastId"?, "presence"?, "typing"?}` → `subscribed`, then `gap`
  if `lastId` is no longer in history, the messages after it, then live `message` frames
- `{"type": "unsubscribe", "roomId"}` → `unsubscribed`
- `{"type": "publish", "roomId", "userId"?, "text", "ref"?, "key"?}` → `{"type": "ack", "ref",
  "message"}`, or an `error` with the same `ref`
- `{"type": "auth", "token"}` → `authenticated`, or an `error` (401)
- `{"type": "ping"}` → `pong`

Server frames about a room: `message`, `gap`, `presence`, `typing`, `deleted`, `lagged`,
`expired` and `error` (`code` as the HTTP status). Up to 100 rooms per connection; a binary frame
closes with 1003, a frame over 64 KiB with 1009, the server stopping with 1001. In full:
docs/websocket.md."""

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "roomchat REST API",
        "version": __version__,
        "description": "Rooms, messages and live server-sent event streams.",
    },
    "paths": {
        "/api/room/{roomId}": {
            "parameters": [_ROOM],
            "post": {
                "summary": "Post a message",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("NewMessage")}},
                },
                "parameters": [_IDEMPOTENCY_KEY],
                "responses": _answers(
                    {
                        "201": _json(_ref("Posted"), "Stored and broadcast"),
                        "200": _json(
                            _ref("Posted"),
                            "A retry: the first post with this Idempotency-Key",
                            {"Idempotent-Replayed": _header("`true`")},
                        ),
                    },
                    *("400", "401", "403", "413", "422", "429", "503"),
                ),
            },
            "get": {
                "summary": "Room info",
                "responses": _answers({"200": _json(_ref("RoomInfo"), "Room info")}, *_READ),
            },
            "delete": {
                "summary": "Delete a room: its streams end, its history is dropped",
                "responses": _answers({"200": _json(_ref("Success"), "Deleted")}, *_READ),
            },
        },
        "/api/room/{roomId}/messages": {
            "parameters": [_ROOM],
            "get": {
                "summary": "A page of history, oldest first",
                "description": "The latest `limit` messages, or the `limit` right after `after`, "
                "or right before `before` (not both). An unused room has an empty page.",
                "parameters": [
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
                        "How many messages",
                    ),
                    _PAGE_FROM,
                ],
                "responses": _answers({"200": _json(_ref("Page"), "Messages")}, *_READ),
            },
        },
        "/api/room/{roomId}/presence": {
            "parameters": [_ROOM],
            "get": {
                "summary": "Who is listening, on every process, a page of users at a time (by userId)",
                "parameters": [
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": PRESENCE_PAGE},
                        "Users per page",
                    ),
                    _query(
                        "after",
                        {"type": "string", "maxLength": MAX_ID},
                        "The page after this userId (the last page's `next`); empty: the first page",
                    ),
                ],
                "responses": _answers({"200": _json(_ref("Presence"), "Presence")}, *_READ),
            },
        },
        "/api/stream/{roomId}": {
            "parameters": [_ROOM],
            "get": {
                "summary": "Live messages as server-sent events",
                "description": (
                    "The first frame is the comment `: connected`, then events: `message` "
                    "(id, data: message JSON), `gap`, `deleted`, `lagged`, `presence` (with "
                    "`presence=1`); `: keepalive` comments on idle streams. Resume with the "
                    "`Last-Event-ID` header or the `lastEventId` query parameter."
                ),
                "parameters": [
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                    _query("lastEventId", {"type": "string"}, "Resume after this id"),
                    _query("userId", {"type": "string", "pattern": _USER_ID}, "Who listens, for presence"),
                    _query("presence", {"type": "string", "enum": ["0", "1"]}, "1: also `presence` events"),
                ],
                "responses": _answers(
                    {
                        "200": {
                            "description": "An event stream",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        }
                    },
                    *("401", "403", "422", "429", "503"),
                ),
            },
        },
        "/api/ws": {
            "get": {
                "tags": ["WebSocket"],
                "summary": "WebSocket: many rooms on one connection (subprotocol roomchat.v1)",
                "description": _WEBSOCKET,
                "responses": {
                    "101": {"description": "Switching protocols: the WebSocket is open"},
                    "400": _json(_ref("Error"), "The upgrade did not ask for the subprotocol roomchat.v1"),
                    "426": _json(_ref("Error"), "A plain GET: connect with a WebSocket"),
                },
            }
        },
        "/api/rooms": {
            "get": {
                "summary": "Rooms that have listeners or history, by room id, a page at a time",
                "parameters": [
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_ROOM_PAGE},
                        "Rooms per page",
                    ),
                    _query(
                        "after",
                        {"type": "string", "pattern": r"^[A-Za-z0-9._-]{0,64}$"},
                        "The page after this room id (the last page's `next`); empty: the first page",
                    ),
                ],
                "responses": _answers({"200": _json(_ref("RoomPage"), "Rooms")}, "401", "422", "503"),
            },
        },
        "/healthz": _probe("Liveness and backend reachability", "Health", "Healthy", "Backend unreachable"),
        "/readyz": _probe(
            "Readiness: 503 while starting, stopping or with the backend unreachable",
            "Readiness", "Ready for traffic", "Not ready",
        ),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "The OpenAPI 3 document")},
            }
        },
        "/docs": {
            "get": {
                "summary": "A page that renders this document, with no CDN",
                "responses": {
                    "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
                },
            }
        },
    },
    "components": {
        "schemas": {
            "RoomId": {"type": "string", "pattern": ROOM_ID, "minLength": 1, "maxLength": MAX_ID},
            "Message": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "Opaque; unique and increasing in its room"},
                    "roomId": _ref("RoomId"),
                    "userId": {"type": "string"},
                    "text": {"type": "string"},
                    "time": {"type": "string", "pattern": _TIME, "description": "RFC 3339 UTC, milliseconds"},
                },
                "required": ["id", "roomId", "userId", "text", "time"],
            },
            "NewMessage": {
                "type": "object",
                "description": "`text`, or the Go server's `data` in its place (beside `text`, `data` "
                "is ignored). Under `--auth jwt` `userId` may be left out: it is the token's `sub`.",
                "properties": {
                    "userId": {"type": "string", "pattern": _USER_ID},
                    "text": _TEXT_SCHEMA,
                    "data": {"type": "string"},
                },
                "required": ["userId"],
                "anyOf": [
                    {"required": ["text"]},
                    {"required": ["data"], "properties": {"data": _TEXT_SCHEMA}},
                ],
            },
            "Posted": {
                "type": "object",
                "properties": {"success": {"type": "boolean", "enum": [True]}, "message": _ref("Message")},
                "required": ["success", "message"],
            },
            "Page": {
                "type": "object",
                "properties": {"messages": {"type": "array", "items": _ref("Message")}},
                "required": ["messages"],
            },
            "RoomInfo": {
                "type": "object",
                "properties": {
                    "roomId": _ref("RoomId"),
                    "listeners": {"type": "integer", "minimum": 0},
                    "lastId": {"type": "string", "nullable": True},
                },
                "required": ["roomId", "listeners", "lastId"],
            },
            "RoomPage": {
                "type": "object",
                "properties": {
                    "rooms": {"type": "array", "items": _ref("RoomInfo"), "maxItems": MAX_PAGE},
                    "next": {
                        "type": "string",
                        "nullable": True,
                        "description": "Pass as `after` for the next page; null on the last one",
                    },
                },
                "required": ["rooms", "next"],
            },
            "Success": {
                "type": "object",
                "properties": {"success": {"type": "boolean", "enum": [True]}},
                "required": ["success"],
            },
            "Health": {
                "type": "object",
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "unavailable"]},
                    "backend": {"type": "string", "enum": ["ok", "unreachable"]},
                },
                "required": ["status", "backend"],
            },
            "Readiness": {
                "type": "object",
                "properties": {"status": {"type": "string", "enum": ["ready", "not ready"]}},
                "required": ["status"],
            },
            "Presence": {
                "type": "object",
                "properties": {
                    "roomId": _ref("RoomId"),
                    "users": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "userId": {"type": "string"},
                                "connections": {"type": "integer", "minimum": 1},
                                "since": {"type": "string", "description": "RFC 3339, first connection"},
                            },
                            "required": ["userId", "connections", "since"],
                        },
                    },
                    "anonymous": {"type": "integer", "minimum": 0},
                    "next": {
                        "type": "string",
                        "nullable": True,
                        "description": "Pass as `after` for the next page of users; null on the last one",
                    },
                },
                "required": ["roomId", "users", "anonymous", "next"],
            },
            "Error": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer", "minimum": 400, "maximum": 599},
                    "message": {"type": "string"},
                },
                "required": ["code", "message"],
            },
        }
    },
}
