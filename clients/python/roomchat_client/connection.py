"""The one WebSocket of a client: reconnects with jitter, resubscribes, resends unacknowledged posts.

A single task owns the socket: it connects, resubscribes every room after the
last message it received, resends every post still waiting for its ack (with
its idempotency key, so the server stores it once), then reads frames until
the socket drops, and starts again after a jittered delay. Everything that
must wait (a token refresh, a retry after 503) runs in a task of its own, so
the reader never stops reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from roomchat_client.backoff import delay
from roomchat_client.errors import RoomchatError
from roomchat_client.events import Gap, Message, event_of
from roomchat_client.subscription import FROM_START, State, Subscription
from roomchat_client.tokens import Tokens

SUBPROTOCOL = "roomchat.v1"
_RECEIVING = (State.ACTIVE, State.PAUSED)  # a room's frames before `subscribed` are stale
RETRIED = {408, 429, 503}  # refusals a later try may get past (a busy server, limits, a backend away)
log = logging.getLogger("roomchat_client")


@dataclass
class _Post:
    frame: dict[str, Any]
    done: asyncio.Future[Message]
    generation: int = -1  # the connection it was last sent on
    auth_generation: int = -1
    tries: int = 0


@dataclass
class Connection:
    url: str  # ws:// or wss:// ... /api/ws?userId=...
    tokens: Tokens
    user_id: str | None = None
    on_state: Callable[[bool], None] | None = None
    rooms: dict[str, Subscription] = field(default_factory=dict)
    _posts: dict[str, _Post] = field(default_factory=dict)
    _ws: ClientConnection | None = None
    _generation: int = 0  # counts connections
    _auth_generation: int = -1  # the token generation the server knows on this connection
    _auth_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _refs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _runner: asyncio.Task[None] | None = None
    _up: asyncio.Event = field(default_factory=asyncio.Event)
    _failed: Exception | None = None  # closed, or refused for good: nothing more will work

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="roomchat-client connection")

    async def close(self) -> None:
        self._failed = ConnectionError("the client is closed")
        if self._ws is not None:
            await self._ws.close()  # a close frame, so the server sees the user leave at once
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for subscription in list(self.rooms.values()):
            subscription.finish()
        self.rooms.clear()
        for post in self._posts.values():
            if not post.done.done():
                post.done.set_exception(ConnectionError("the client is closed"))

    # -- the socket's life -----------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                headers = await self.tokens.headers()
                generation = self.tokens.generation
                ws = await connect(
                    self.url,
                    subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]  # a Subprotocol is a str
                    additional_headers=headers,
                    compression=None,
                    proxy=None,
                    open_timeout=10,
                    close_timeout=2,
                    max_size=2**20,
                )
            except InvalidStatus as exc:
                if not self._handshake_refused(exc.response.status_code):
                    return
            except (OSError, TimeoutError, WebSocketException) as exc:
                log.debug("connecting to %s: %s", self.url, exc)
            else:
                attempt = 0
                await self._serve(ws, generation)
            await asyncio.sleep(delay(attempt))
            attempt += 1

    def _handshake_refused(self, status: int) -> bool:
        """Whether to try again after the server refused the upgrade with `status`."""
        if status == 401 and self.tokens.refreshable:
            self._spawn(self._refresh_token())
            return True
        if status in RETRIED or status >= 500:
            return True
        self._fail_all(RoomchatError(status, "the server refused the WebSocket"))
        return False

    async def _refresh_token(self) -> None:
        async with self._auth_lock:
            await self.tokens.refresh()

    async def _serve(self, ws: ClientConnection, auth_generation: int) -> None:
        self._generation += 1
        self._ws, self._auth_generation = ws, auth_generation
        self._set_state(True)
        try:
            for subscription in list(self.rooms.values()):
                if subscription.state is not State.PAUSED:
                    await self._subscribe(subscription)
            for post in list(self._posts.values()):
                await self._send_post(post)
            async for raw in ws:
                self._on_frame(json.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            ws.transport.abort()  # gone already, or this task was cancelled: never leave it open
            self._ws = None
            for subscription in self.rooms.values():
                if subscription.state is not State.PAUSED:
                    subscription.state = State.IDLE
            self._set_state(False)

    def _set_state(self, up: bool) -> None:
        if up:
            self._up.set()
        else:
            self._up.clear()
        if self.on_state is not None:
            self.on_state(up)

    async def _send(self, frame: dict[str, Any]) -> None:
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(json.dumps(frame))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- subscriptions ---------------------------------------------------------

    async def add(self, subscription: Subscription) -> None:
        """Subscribe now if connected, else on connecting; returns once subscribed."""
        if self._failed is not None:
            raise self._failed
        if subscription.room_id in self.rooms:
            raise ValueError(f"already subscribed to {subscription.room_id} on this client")
        self.rooms[subscription.room_id] = subscription
        if self._ws is not None:
            await self._subscribe(subscription)
        await asyncio.shield(subscription.ready)

    async def _subscribe(self, subscription: Subscription) -> None:
        """(Re)subscribe after the last message received; stale frames of the room are dropped
        until `subscribed` comes back."""
        if self._ws is None or subscription.generation == self._generation:
            return
        room_id = subscription.room_id
        frame: dict[str, Any] = {"type": "subscribe", "roomId": room_id, "ref": _sub_ref(subscription)}
        if subscription.resume_id is not None:
            frame["lastId"] = subscription.resume_id
        if subscription.presence:
            frame["presence"] = True
        if subscription.typing:
            frame["typing"] = True
        subscription.state = State.SUBSCRIBING
        subscription.subscribed_before = True
        subscription.generation = self._generation
        subscription.auth_generation = self._auth_generation
        await self._send(frame)

    async def _resubscribe(self, subscription: Subscription, wait: float = 0.0) -> None:
        await asyncio.sleep(wait)
        if self.rooms.get(subscription.room_id) is subscription and subscription.state is not State.ENDED:
            subscription.generation = -1
            await self._subscribe(subscription)

    async def unsubscribe(self, subscription: Subscription) -> None:
        if self.rooms.get(subscription.room_id) is subscription:
            del self.rooms[subscription.room_id]
            await self._send({"type": "unsubscribe", "roomId": subscription.room_id})
        subscription.finish()

    def paused(self, subscription: Subscription) -> None:
        subscription.state = State.PAUSED
        self._spawn(self._send({"type": "unsubscribe", "roomId": subscription.room_id}))

    def drained(self, subscription: Subscription) -> None:
        subscription.state = State.IDLE
        self._spawn(self._resubscribe(subscription))

    # -- posts -----------------------------------------------------------------

    async def publish(self, room_id: str, text: str) -> Message:
        """Send with an idempotency key; resend with the same key on every new connection until acked."""
        if self._failed is not None:
            raise self._failed
        ref = f"p{next(self._refs)}"
        frame: dict[str, Any] = {"type": "publish", "roomId": room_id, "text": text, "ref": ref}
        frame["key"] = uuid.uuid4().hex
        if self.user_id is not None:
            frame["userId"] = self.user_id
        post = _Post(frame, asyncio.get_running_loop().create_future())
        self._posts[ref] = post
        try:
            await self._send_post(post)
            return await post.done
        finally:
            del self._posts[ref]

    async def _send_post(self, post: _Post) -> None:
        if self._ws is None or post.generation == self._generation or post.done.done():
            return
        post.generation, post.auth_generation = self._generation, self._auth_generation
        post.tries += 1
        await self._send(post.frame)

    async def _resend(self, post: _Post, wait: float) -> None:
        await asyncio.sleep(wait)
        post.generation = -1
        await self._send_post(post)

    # -- frames from the server ------------------------------------------------

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message":  # the hot path: once per delivery
            data = frame["message"]
            room = self.rooms.get(data["roomId"])
            if room is not None and room.state in _RECEIVING and data["id"] != room.last_id:
                room.push(Message.from_json(data))
            return
        if kind in ("ack", "error") and isinstance(frame.get("ref"), str):
            self._on_answer(frame)
            return
        subscription = self.rooms.get(_room_of(frame))
        if subscription is None:
            return
        if kind == "subscribed":
            subscription.state = State.ACTIVE
            if not subscription.ready.done():
                subscription.ready.set_result(None)
        elif subscription.state not in _RECEIVING:
            return  # from before the last `subscribe`: replayed after it
        elif kind == "deleted":
            del self.rooms[subscription.room_id]
            subscription.finish()
        elif kind == "lagged":
            self._spawn(self._resubscribe(subscription))
        elif kind == "expired":
            self._spawn(self._reauthenticate(subscription.auth_generation, self._resubscribe(subscription)))
        elif kind == "error":  # the room's feed was lost (503): try again a little later
            self._spawn(self._resubscribe(subscription, delay(0)))
        else:
            self._on_event(subscription, frame)

    def _on_event(self, subscription: Subscription, frame: dict[str, Any]) -> None:
        event = event_of(frame)
        if isinstance(event, Gap) and event.last_event_id == FROM_START:
            return  # the room was empty when subscribed: all of history is exactly what was missed
        if event is not None:
            subscription.push(event)

    def _on_answer(self, frame: dict[str, Any]) -> None:
        ref: str = frame["ref"]
        if ref.startswith("s:"):
            subscription = self.rooms.get(ref[2:])
            if subscription is not None:
                self._on_refused(subscription, frame)
            return
        post = self._posts.get(ref)
        if post is None or post.done.done():
            return
        if frame["type"] == "ack":
            post.done.set_result(Message.from_json(frame["message"]))
        elif frame.get("code") == 401:
            self._spawn(self._reauthenticate(post.auth_generation, self._resend(post, 0.0)))
        elif frame.get("code") in RETRIED:
            wait = frame.get("retryAfter") or delay(post.tries)
            self._spawn(self._resend(post, float(wait)))
        else:
            post.done.set_exception(RoomchatError(int(frame.get("code", 0)), str(frame.get("message"))))

    def _on_refused(self, subscription: Subscription, frame: dict[str, Any]) -> None:
        code = frame.get("code")
        if code == 409:
            return  # already subscribed on this connection: the first one stands
        if code == 401:
            self._spawn(self._reauthenticate(subscription.auth_generation, self._resubscribe(subscription)))
        elif code in RETRIED:
            self._spawn(self._resubscribe(subscription, float(frame.get("retryAfter") or delay(1))))
        else:
            self.rooms.pop(subscription.room_id, None)
            subscription.finish(RoomchatError(int(code or 0), str(frame.get("message"))))

    async def _reauthenticate(self, used: int, then: Coroutine[Any, Any, None]) -> None:
        """Send a fresh token (asking for one unless a newer one was sent since `used`), then `then`."""
        try:
            fresh = await self._fresh_token(used)
        except BaseException:
            then.close()
            raise
        if fresh:
            await then
        else:
            then.close()
            self._fail_all(RoomchatError(401, "the token expired and there is no function to refresh it"))

    async def _fresh_token(self, used: int) -> bool:
        async with self._auth_lock:
            if self._auth_generation > used:
                return True
            if not self.tokens.refreshable:
                return False
            await self.tokens.refresh()
            self._auth_generation = self.tokens.generation
            await self._send({"type": "auth", "token": await self.tokens.current()})
            return True

    def _fail_all(self, error: RoomchatError) -> None:
        self._failed = error
        for subscription in list(self.rooms.values()):
            subscription.finish(error)
        self.rooms.clear()
        for post in self._posts.values():
            if not post.done.done():
                post.done.set_exception(error)

    async def wait_up(self) -> None:
        await self._up.wait()


def _sub_ref(subscription: Subscription) -> str:
    return f"s:{subscription.room_id}"


def _room_of(frame: dict[str, Any]) -> str:
    room = frame.get("roomId")
    return room if isinstance(room, str) else ""
