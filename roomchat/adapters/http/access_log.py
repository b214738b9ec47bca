"""`--access-log`: one line per HTTP request or WebSocket, logged when it ends.

Method, path (credentials in the query redacted), status, bytes and duration;
under --log-json the same as fields. Installed only with the option, so
without it a request pays nothing. Event streams and WebSockets write their
events straight to the socket (the fast path, sse.py), so their `bytes` count
what went through ASGI: the response head and any body sent that way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from roomchat.adapters.http.sse import Receive, Scope, Send

log = logging.getLogger("roomchat.access")
_CREDENTIALS = frozenset({"access_token", "token", "roomchat_token"})  # query parameters never logged
_STATUS = {"http.response.start": None, "websocket.http.response.start": None, "websocket.accept": 101}
_BODY = ("http.response.body", "websocket.http.response.body")

App = Callable[[Scope, Receive, Send], Any]


def access_logged(app: App) -> App:
    async def logged(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        seen = {"status": 0, "bytes": 0}

        async def counting(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind in _STATUS:
                seen["status"] = _STATUS[kind] or message["status"]
            elif kind in _BODY:
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, counting)
        finally:
            _log(scope, seen["status"], seen["bytes"], time.perf_counter() - started)

    return logged


def _log(scope: Scope, status: int, sent: int, seconds: float) -> None:
    method = scope.get("method", "GET") if scope["type"] == "http" else "WS"
    path = shown_path(scope)
    client = (scope.get("client") or ("-",))[0]
    fields = {"method": method, "path": path, "status": status, "bytes": sent,
              "duration_ms": round(seconds * 1000, 1), "client": client}  # fmt: skip
    log.info("%s %s %s %d %d B %.1f ms", client, method, path, status, sent, seconds * 1000,
             extra={"fields": fields})  # fmt: skip


def shown_path(scope: Scope) -> str:
    """The path and query, with any credential in the query replaced by `[redacted]`."""
    query = scope.get("query_string", b"").decode("latin-1")
    if not query:
        return str(scope.get("path", ""))
    pairs = parse_qsl(query, keep_blank_values=True)
    pairs = [(key, "[redacted]" if key in _CREDENTIALS else value) for key, value in pairs]
    return f"{scope.get('path', '')}?{urlencode(pairs, safe='[]/:,')}"
