"""The room service: the `Manager` every adapter talks to."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from roomchat.core import validation
from roomchat.core.broadcaster import Broadcaster
from roomchat.core.errors import (
    BackendUnavailable,
    Forbidden,
    RateLimited,
    RoomchatError,
    Unauthenticated,
    ValidationError,
)
from roomchat.core.identity import Authenticator, Identity, OpenAuthenticator
from roomchat.core.limits import Limits, StreamCounter
from roomchat.core.listener import Counters, EndReason, Gap, Listener
from roomchat.core.message import Message, id_key
from roomchat.core.ports import Backend, Posted, PublishHook, RoomInfo, RoomPage, Stats
from roomchat.core.presence import HEARTBEAT, WINDOW, Presence, RoomPresence

DEFAULT_BUFFER = 1024
MAX_PAGE = 1000
DEFAULT_ROOM_PAGE = 100
HOOK_GRACE = 30.0  # seconds a replaced publish hook stays open for the posts it is answering


class RoomService:
    """Rooms, listeners and history over one backend, for one process."""

    def __init__(
        self,
        backend: Backend,
        *,
        buffer_size: int = DEFAULT_BUFFER,
        max_text: int = validation.DEFAULT_MAX_TEXT,
        authenticator: Authenticator | None = None,
        limits: Limits | None = None,
        presence_heartbeat: float = HEARTBEAT,
        presence_window: float = WINDOW,
        publish_hook: PublishHook | None = None,
    ) -> None:
        if buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        self._backend = backend
        self._auth = authenticator or OpenAuthenticator()
        self.limits = limits or Limits()
        self._streams = StreamCounter(self.limits)
        self._anyone = self._auth.identify(None)  # the caller an adapter named no identity for
        self._buffer_size = buffer_size
        self._max_text = max_text
        self._rooms: dict[str, Broadcaster] = {}
        self._counters = Counters()
        self._listeners: dict[str, int] = {}
        self._closing = False
        self._publish_hook = publish_hook
        self._retired: set[PublishHook] = set()  # replaced hooks, closed HOOK_GRACE later
        self._hooks_closing: set[asyncio.Task[None]] = set()
        self._presence = Presence(backend, window=presence_window, heartbeat=presence_heartbeat)

    async def start(self) -> None:
        await self._backend.start(self)

    def reconfigure(
        self, *, authenticator: Authenticator | None = None, limits: Limits | None = None
    ) -> None:
        """Apply what a reload changed (contract: Configuration file). Open streams go on:
        they keep the identity they opened with, and the new limits count them."""
        if authenticator is not None:
            self._auth = authenticator
            self._anyone = authenticator.identify(None)
        if limits is not None:
            self.limits = self._streams.limits = limits

    def set_publish_hook(self, hook: PublishHook | None) -> None:
        """Ask `hook` (None: nothing) from the next post on. The one it replaces is closed
        once the posts it is answering have had their time (HOOK_GRACE)."""
        old, self._publish_hook = self._publish_hook, hook
        if old is not None and old is not hook:
            self._retired.add(old)
            asyncio.get_running_loop().call_later(HOOK_GRACE, self._close_retired, old)

    def _close_retired(self, hook: PublishHook) -> None:
        if hook in self._retired:  # not closed with the service meanwhile
            self._retired.discard(hook)
            task = asyncio.get_running_loop().create_task(hook.close())
            self._hooks_closing.add(task)
            task.add_done_callback(self._hooks_closing.discard)

    async def close(self) -> None:
        """End every stream (SHUTDOWN) and release the backend."""
        self._closing = True
        for room in self._rooms.values():
            room.end_all(EndReason.SHUTDOWN)
        await self._presence.close()
        await self._backend.close()
        for hook in [self._publish_hook, *self._retired]:
            if hook is not None:
                await hook.close()
        self._retired.clear()

    # -- Manager -------------------------------------------------------------

    def identify(self, token: str | None, address: str | None = None) -> Identity:
        return self._auth.identify(token, address)

    @asynccontextmanager
    async def listen(
        self,
        room_id: str,
        after: str | None = None,
        *,
        transport: str = "unknown",
        identity: Identity | None = None,
        user_id: str | None = None,
        presence: bool = False,
    ) -> AsyncIterator[Listener]:
        who = identity or self._anyone
        validation.room_id(room_id)
        who.check_read(room_id)
        user = _present_as(who, user_id)
        if self._closing:
            raise BackendUnavailable("the server is stopping")
        self._streams.opening(who.address)
        try:
            async with self._listening(room_id, after, transport, who.expires) as listener:
                self._presence.opened(room_id, user)
                if presence:  # after the replay is queued: notes never overtake it
                    self._presence.watch(room_id, listener)
                try:
                    yield listener
                finally:
                    self._presence.unwatch(room_id, listener)
                    self._presence.closed(room_id, user)
        finally:
            self._streams.closed(who.address)

    @asynccontextmanager
    async def _listening(
        self, room_id: str, after: str | None, transport: str, expires: float | None
    ) -> AsyncIterator[Listener]:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = Broadcaster(room_id)
            try:
                await self._backend.subscribe(room_id)
            except BaseException:
                room.end_all(EndReason.UNAVAILABLE)  # openers waiting on `ready`
                room.ready.set()
                self._rooms.pop(room_id, None)
                raise
            room.ready.set()
        listener = Listener(room_id, transport, self._buffer_size, self._counters)
        room.listeners[listener] = None
        self._listeners[transport] = self._listeners.get(transport, 0) + 1
        expiry = _expire_at(listener, expires)
        try:
            await room.ready.wait()
            if after is not None:
                await self._replay(listener, after)
            yield listener
        finally:
            if expiry is not None:
                expiry.cancel()
            self._listeners[transport] -= 1
            room.listeners.pop(listener, None)
            if not room.listeners and self._rooms.get(room_id) is room:
                del self._rooms[room_id]
                self._backend.unsubscribe(room_id)

    async def _replay(self, listener: Listener, after: str) -> None:
        listener.last_id = after
        replay = await self._backend.replay(listener.room_id, after)
        if replay.found:
            listener.begin(replay.messages, id_key(after), None)
        else:
            listener.begin(replay.messages, None, Gap(after, replay.oldest_id))

    async def submit(
        self, room_id: str, user_id: str | None, text: str, *, identity: Identity | None = None
    ) -> Message:
        user, text = await self._admit(room_id, user_id, text, identity or self._anyone)
        message = await self._backend.publish(room_id, user, text)
        self._counters.published += 1
        return message

    async def submit_once(
        self,
        room_id: str,
        user_id: str | None,
        text: str,
        *,
        key: str | None,
        identity: Identity | None = None,
    ) -> Posted:
        if key is None:
            return Posted(await self.submit(room_id, user_id, text, identity=identity))
        validation.idempotency_key(key)
        user, text = await self._admit(room_id, user_id, text, identity or self._anyone)
        posted = await self._backend.publish_once(room_id, user, text, key)
        if not posted.replayed:
            self._counters.published += 1
        return posted

    async def _admit(self, room_id: str, user_id: str | None, text: str, who: Identity) -> tuple[str, str]:
        """Check a post (rules, permission, rate, the publish hook); the userId it is made
        under and the text to store."""
        validation.room_id(room_id)
        who.check_post(room_id)
        user = validation.user_id(who.poster(user_id))
        validation.text(text, self._max_text)
        limits = self.limits
        if limits.rate:
            wait = await self._backend.spend(who.limit_key, limits.rate, limits.burst)
            if wait:
                raise RateLimited(f"too many posts: at most {limits.rate:g} a second", wait)
        hook = self._publish_hook
        if hook is not None:
            verdict = await hook.check(room_id, user, text)
            if not verdict.allow:
                raise Forbidden(verdict.reason or "refused by the publish hook")
            if verdict.text is not None:
                text = validation.text(verdict.text, self._max_text)
        return user, text

    async def history(
        self,
        room_id: str,
        limit: int = 50,
        after: str | None = None,
        before: str | None = None,
        *,
        identity: Identity | None = None,
    ) -> list[Message]:
        validation.room_id(room_id)
        (identity or self._anyone).check_read(room_id)
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError("limit", f"limit must be 1-{MAX_PAGE}")
        for name, value in (("after", after), ("before", before)):
            if value is not None and id_key(value) is None:
                raise ValidationError(name, f"{name} must be a message id")
        if after is not None and before is not None:
            raise ValidationError("before", "give after or before, not both")
        return await self._backend.history(room_id, limit, after, before)

    async def room(self, room_id: str, *, identity: Identity | None = None) -> RoomInfo:
        validation.room_id(room_id)
        (identity or self._anyone).check_read(room_id)
        elsewhere = (await self._presence.remote_listeners([room_id])).get(room_id, 0)
        listeners = self._local_listeners(room_id) + elsewhere
        newest = await self._backend.last_ids([room_id])
        return RoomInfo(room_id, listeners, newest[room_id])

    async def presence(self, room_id: str, *, identity: Identity | None = None) -> RoomPresence:
        validation.room_id(room_id)
        (identity or self._anyone).check_read(room_id)
        return await self._presence.room(room_id)

    async def rooms(
        self, limit: int = DEFAULT_ROOM_PAGE, after: str | None = None, *, identity: Identity | None = None
    ) -> RoomPage:
        """Rooms with history (the backend's page) or listeners here, merged by id.

        Rooms the caller may not read are left out of the page, not refused.
        """
        who = identity or self._anyone
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError("limit", f"limit must be 1-{MAX_PAGE}")
        if after is not None:
            validation.room_id(after)
        if who.anonymous and not who.anonymous_read:
            raise Unauthenticated("a token is needed")
        stored = await self._backend.rooms(limit + 1, after)
        local = heapq.nsmallest(limit + 1, (r for r in self._rooms if after is None or r > after))
        names = sorted(set(stored) | set(local))[: limit + 1]
        more = len(names) > limit
        names = names[:limit]
        readable = [name for name in names if _may_read(who, name)]
        elsewhere = await self._presence.remote_listeners(readable)
        newest = await self._backend.last_ids(readable)
        infos = [
            RoomInfo(name, self._local_listeners(name) + elsewhere.get(name, 0), newest[name])
            for name in readable
        ]
        return RoomPage(infos, names[-1] if more else None)

    async def delete(self, room_id: str, *, identity: Identity | None = None) -> None:
        validation.room_id(room_id)
        (identity or self._anyone).check_delete(room_id)
        await self._backend.delete(room_id)

    async def healthy(self) -> bool:
        return await self._backend.ping()

    @property
    def open_streams(self) -> int:
        return self._streams.open

    def stats(self) -> Stats:
        c = self._counters
        return Stats(c.published, c.delivered, c.lagged, dict(self._listeners))

    def _local_listeners(self, room_id: str) -> int:
        room = self._rooms.get(room_id)
        return sum(1 for x in room.listeners if x.ended is None) if room else 0

    # -- BackendSink -----------------------------------------------------------

    def message(self, message: Message) -> None:
        room = self._rooms.get(message.room_id)
        if room is not None:
            room.publish(message)

    def deleted(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is not None:
            room.end_all(EndReason.DELETED)

    def interrupted(self, room_id: str) -> None:
        room = self._rooms.get(room_id)
        if room is not None:
            room.end_all(EndReason.UNAVAILABLE)

    def presence_changed(self, room_id: str) -> None:
        self._presence.remote_changed(room_id)


def _may_read(who: Identity, room_id: str) -> bool:
    try:
        who.check_read(room_id)
    except RoomchatError:
        return False
    return True


def _present_as(who: Identity, user_id: str | None) -> str | None:
    """Who a listener is in presence: the token's `sub`, else (`--auth none`) the userId it gives."""
    if not who.open:
        return who.user_id
    return None if user_id is None else validation.user_id(user_id)


def _expire_at(listener: Listener, expires: float | None) -> asyncio.TimerHandle | None:
    """End the listener as EXPIRED when its token does."""
    if expires is None:
        return None
    loop = asyncio.get_running_loop()
    delay = max(0.0, expires - time.time())
    return loop.call_later(delay, listener.end, EndReason.EXPIRED)

