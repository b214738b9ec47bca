"""The OpenAPI 3 document of the `rest` adapter, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from roomchat import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ROOM = {
    "name": "roomId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
}
_ERRORS = {
    "400": _json(_ref("Error"), "Malformed JSON"),
    "413": _json(_ref("Error"), "Body larger than 64 KiB"),
    "422": _json(_ref("Error"), "A field breaks a rule; the message names it"),
    "503": _json(_ref("Error"), "Backend unreachable; nothing was stored"),
}

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
                "responses": {"201": _json(_ref("Posted"), "Stored and broadcast"), **_ERRORS},
            },
            "get": {
                "summary": "Room info",
                "responses": {"200": _json(_ref("RoomInfo"), "Room info"), "422": _ERRORS["422"]},
            },
            "delete": {
                "summary": "Delete a room: its streams end, its history is dropped",
                "responses": {"200": _json(_ref("Success"), "Deleted"), "422": _ERRORS["422"]},
            },
        },
        "/api/room/{roomId}/messages": {
            "parameters": [_ROOM],
            "get": {
                "summary": "A page of history, oldest first",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                    },
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                    {"name": "before", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {"200": _json(_ref("Page"), "Messages"), "422": _ERRORS["422"]},
            },
        },
        "/api/room/{roomId}/presence": {
            "parameters": [_ROOM],
            "get": {
                "summary": "Who is listening, on every process",
                "responses": {"200": _json(_ref("Presence"), "Presence"), "422": _ERRORS["422"]},
            },
        },
        "/api/stream/{roomId}": {
            "parameters": [_ROOM],
            "get": {
                "summary": "Live messages as server-sent events",
                "description": (
                    "Events: `message` (id, data: message JSON), `gap`, `deleted`, `lagged`, "
                    "`presence` (with `presence=1`); "
                    "`: keepalive` comments on idle streams. Resume with the `Last-Event-ID` "
                    "header or the `lastEventId` query parameter."
                ),
                "parameters": [
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                    {"name": "lastEventId", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "userId",
                        "in": "query",
                        "description": "Who listens, for presence (`--auth jwt`: the token's `sub`)",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "presence",
                        "in": "query",
                        "description": "1: also `presence` events, at most one a second",
                        "schema": {"type": "string", "enum": ["0", "1"]},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "An event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "422": _ERRORS["422"],
                },
            },
        },
        "/api/rooms": {
            "get": {
                "summary": "Rooms that have listeners or history",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"rooms": {"type": "array", "items": _ref("RoomInfo")}},
                        },
                        "Rooms",
                    )
                },
            },
        },
        "/healthz": {
            "get": {
                "summary": "Liveness and backend reachability",
                "responses": {
                    "200": {"description": "Healthy"},
                    "503": {"description": "Backend unreachable"},
                },
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text format"}}}
        },
    },
    "components": {
        "schemas": {
            "Message": {
                "type": "object",
                "properties": {k: {"type": "string"} for k in ("id", "roomId", "userId", "text", "time")},
                "required": ["id", "roomId", "userId", "text", "time"],
            },
            "NewMessage": {
                "type": "object",
                "properties": {
                    "userId": {"type": "string", "minLength": 1, "maxLength": 64},
                    "text": {"type": "string", "minLength": 1},
                    "data": {"type": "string", "description": "Accepted in place of text"},
                },
                "required": ["userId"],
            },
            "Posted": {
                "type": "object",
                "properties": {"success": {"type": "boolean"}, "message": _ref("Message")},
            },
            "Page": {
                "type": "object",
                "properties": {"messages": {"type": "array", "items": _ref("Message")}},
            },
            "RoomInfo": {
                "type": "object",
                "properties": {
                    "roomId": {"type": "string"},
                    "listeners": {"type": "integer"},
                    "lastId": {"type": "string", "nullable": True},
                },
            },
            "Presence": {
                "type": "object",
                "properties": {
                    "roomId": {"type": "string"},
                    "users": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "userId": {"type": "string"},
                                "connections": {"type": "integer"},
                                "since": {"type": "string", "description": "RFC 3339: first connection"},
                            },
                        },
                    },
                    "anonymous": {"type": "integer"},
                },
            },
            "Success": {"type": "object", "properties": {"success": {"type": "boolean"}}},
            "Error": {
                "type": "object",
                "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
            },
        }
    },
}
