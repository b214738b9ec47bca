"""Presence over HTTP, shared by the `rest` and `html` adapters (contract: Presence)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from roomchat.adapters.http.bodies import whole_number
from roomchat.core import Manager, ValidationError, validation
from roomchat.core.identity import Identity
from roomchat.core.presence import DEFAULT_PAGE

_YES = ("1", "true", "yes", "on")
_NO = ("", "0", "false", "no", "off")


def stream_presence(query: Mapping[str, str]) -> tuple[str | None, bool]:
    """A stream's `?userId=` (None when absent or empty) and whether `?presence=` asks for events.

    A bad userId is a 422 before the stream starts, for HEAD too: a page can ask
    whether the server takes its name.
    """
    user_id = query.get("userId") or None
    if user_id is not None:
        validation.user_id(user_id)
    wanted = query.get("presence", "").strip().lower()
    if wanted not in _YES and wanted not in _NO:
        raise ValidationError("presence", "presence must be 1 or 0")
    return user_id, wanted in _YES


async def presence_page(manager: Manager, request: Request, identity: Identity) -> Response:
    """`GET .../presence?limit=100&after=<userId>`: one page of the room's users, paged as /api/rooms."""
    query = request.query_params
    found = await manager.presence(
        request.path_params["roomId"],
        whole_number(query, "limit", DEFAULT_PAGE),
        query.get("after") or None,
        identity=identity,
    )
    return JSONResponse(found.to_dict())
