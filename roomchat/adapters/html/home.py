"""The home page's room list: one page at a time, optionally only the rooms
whose id starts with a prefix (the search box). Never every room: with
300,000 rooms the page would otherwise weigh tens of megabytes."""

from __future__ import annotations

from dataclasses import dataclass

from roomchat.core import Manager
from roomchat.core.identity import Identity
from roomchat.core.ports import RoomInfo
from roomchat.core.validation import MAX_ID

HOME_PAGE = 50  # rooms listed on one page of the home page
# Every character a room id may hold, in the order room ids sort (by code point).
_ROOM_CHARS = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class RoomList:
    rooms: list[RoomInfo]
    next: str | None  # the `after` of the next page, if there is one


def before(prefix: str) -> str | None:
    """The greatest room id that sorts before `prefix`: the `after` from which
    a page lists `prefix` itself and every id that starts with it."""
    head, last = prefix[:-1], prefix[-1]
    index = _ROOM_CHARS.index(last)
    if index == 0:
        return head or None
    return head + _ROOM_CHARS[index - 1] + _ROOM_CHARS[-1] * (MAX_ID - len(prefix))


async def room_list(
    manager: Manager, identity: Identity, prefix: str, after: str | None, size: int = HOME_PAGE
) -> RoomList:
    """One page of rooms after `after` (exclusive), only those starting with `prefix`.

    `prefix` must already be 1-64 room-id characters, or "" for every room.
    Raises as `manager.rooms` does.
    """
    start = after
    if prefix and (after is None or after < prefix):
        start = before(prefix)
    page = await manager.rooms(size, start, identity=identity)
    rooms = [info for info in page.rooms if info.room_id.startswith(prefix)]
    if page.next is None or not page.next.startswith(prefix):
        return RoomList(rooms, None)
    return RoomList(rooms, page.next)
