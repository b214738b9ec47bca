"""The Redis backend: rooms, history and ids shared by every process on one Redis.

One stream per room (`roomchat:room:<roomId>`): publishing is one XADD with an
approximate MAXLEN of the history size, and the stream id is the message id.
Each process reads the rooms it has listeners for with one blocking XREAD over
all their streams, on its own connection, and learns of deletions on one
pub/sub connection (channel `roomchat:deleted`). Presence: one hash per room,
a field per process holding its part with a deadline (see docs/presence.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from roomchat.backends import redis_lua
from roomchat.backends.redis_connect import RedisConnector
from roomchat.core.errors import BackendUnavailable, Overloaded
from roomchat.core.message import Message, format_time, id_key
from roomchat.core.ports import KEY_TTL, BackendSettings, BackendSink, Posted, Replay
from roomchat.core.presence import PresencePart

ROOM_PREFIX = "roomchat:room:"
ROOM_INDEX = "roomchat:room-index"  # sorted set (all scores 0) of rooms that have history: paged by id
LEGACY_ROOMS = "roomchat:rooms"  # the plain set older versions kept; moved into ROOM_INDEX at start
FLOOR = "roomchat:id-floor"  # the largest id a deleted room ever had: a new stream starts above it
BUCKET_PREFIX = "roomchat:rate:"  # a token bucket per user or client IP: {tokens, at}
KEY_PREFIX = "roomchat:key:"  # an idempotency key: "<message id> <text>", for KEY_TTL seconds
DELETED = "roomchat:deleted"  # pub/sub channel: {"roomId", "node"}
PRESENCE_PREFIX = "roomchat:presence:"  # hash per room: node -> "<deadline ms> <part JSON>"
PRESENCE_CHANGED = "roomchat:presence-changed"  # pub/sub channel: {"roomId", "node"}
PRESENCE_BATCH = 500  # rooms per presence script call (a heartbeat over many rooms is split)
BLOCK_MS = 5_000  # longest XREAD block; a subscribe wakes the reader at once
COMMAND_TIMEOUT = 2.0  # seconds for any command (and for ping)
CONNECT_TIMEOUT = 1.0
READ_COUNT = 1_000  # entries per stream per XREAD
RETRY_MIN, RETRY_MAX = 0.05, 1.0  # reconnect backoff, seconds
WAIT_MS = 1_000  # longest WAIT for replicas (`?wait=N`), within COMMAND_TIMEOUT

_MAX = 2**64 - 1  # largest part of a stream id
_ERRORS = (RedisError, OSError, TimeoutError)
_T = TypeVar("_T")

log = logging.getLogger("roomchat.redis")


class RedisBackend:
    """Shares rooms, history and ids between every process that uses one Redis."""

    def __init__(self, url: str, settings: BackendSettings | None = None) -> None:
        settings = settings or BackendSettings()
        if settings.history < 1:
            raise ValueError("history must be at least 1")
        self._connector = RedisConnector(url)  # ValueError on a malformed URL, before any connection
        self._where = self._connector.where
        self._wait = self._connector.wait
        self._history = settings.history
        self._max_rooms = settings.max_rooms
        self._node = uuid.uuid4().hex  # this process, to skip its own deletion notices
        self._sink: BackendSink | None = None
        self._redis: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._reader_pool: ConnectionPool | None = None
        self._reader_conn: AbstractConnection | None = None
        self._reader_id: int | None = None
        self._pubsub: PubSub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waker: asyncio.Task[None] | None = None
        # Rooms this process listens to -> the last id delivered (or the start position).
        self._positions: dict[str, str] = {}
        self._version = 0  # bumped when a room is subscribed
        self._inflight: int | None = None  # the version the XREAD in flight was built from
        self._wanted = asyncio.Event()  # set while there is a room to read
        self._feed_down = False
        self._resuming = False  # the reader lost its connection: check positions before reading on
        self._unchecked: dict[str, str] = {}  # rooms left meanwhile -> the last id delivered
        self._renew_pubsub = False
        self._closing = False

    # -- lifecycle -------------------------------------------------------------

    async def start(self, sink: BackendSink) -> None:
        """Connect, or raise BackendUnavailable with a one-line reason."""
        self._sink = sink
        self._scripts = {}  # registered on this client
        self._redis = self._connector.client(
            protocol=2,  # RESP2 whatever redis-py's default: works with Redis 5 and up
            decode_responses=True,
            socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            # One immediate retry on a broken pooled connection (Redis restarted), none on timeouts.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._reader_pool = self._connector.pool(
            protocol=2,
            decode_responses=True,
            socket_timeout=BLOCK_MS / 1000 + COMMAND_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await self._redis.ping()
                await self._redis.register_script(redis_lua.MIGRATE_ROOM_SET)(
                    keys=[LEGACY_ROOMS, ROOM_INDEX], args=[ROOM_PREFIX]
                )
            self._pubsub = await self._subscribe_deletions()
        except _ERRORS as exc:
            await self.close()
            raise BackendUnavailable(f"cannot reach Redis at {self._where}: {_reason(exc)}") from None
        self._tasks = [
            asyncio.ensure_future(self._read_loop()),
            asyncio.ensure_future(self._deletion_loop()),
        ]

    async def close(self) -> None:
        self._closing = True
        self._positions.clear()
        # Closing the reader's socket first ends its read at once: a cancelled
        # read inside redis-py's parser does not always give up by itself.
        await self._drop_reader()
        tasks = [*self._tasks, *([self._waker] if self._waker else [])]
        self._tasks = []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=COMMAND_TIMEOUT)
        if self._pubsub is not None:
            await _close(self._pubsub)
            self._pubsub = None
        if self._reader_pool is not None:
            with contextlib.suppress(*_ERRORS):
                await self._reader_pool.aclose()
        if self._redis is not None:
            with contextlib.suppress(*_ERRORS):
                await self._redis.aclose()
        with contextlib.suppress(*_ERRORS):
            await self._connector.aclose()

    async def ping(self) -> bool:
        if self._redis is None:
            return False
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):  # not wait_for: on 3.11 it can swallow a cancel
                return bool(await self._redis.ping())
        except _ERRORS:
            return False

    # -- storage ---------------------------------------------------------------

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        """One script: the room count, the id floor, XADD and the index, atomically.

        Delivery, here too, comes through the reader.
        """
        script = self._script(redis_lua.PUBLISH)
        keys = [ROOM_PREFIX + room_id, ROOM_INDEX, FLOOR]
        args: list[str | int] = [room_id, self._history, self._max_rooms, user_id, text]
        added = await self._store(script, keys, args)
        if added is None:
            raise Overloaded("too many rooms")
        return _message(room_id, str(added), user_id, text)

    async def publish_once(self, room_id: str, user_id: str, text: str, key: str) -> Posted:
        """One Lua script stores the message and its key, or answers the message stored under it.

        Redis runs a script whole or not at all, so a post whose answer was lost (a
        timeout while Redis stalled, which then stored it) is found by its retry on
        any process, and a retry racing the first post cannot store a second copy.
        """
        script = self._script(redis_lua.PUBLISH_ONCE)
        keys = [ROOM_PREFIX + room_id, ROOM_INDEX, FLOOR, _key_name(room_id, user_id, key)]
        args: list[str | int] = [room_id, self._history, self._max_rooms, user_id, text, KEY_TTL]
        answer = await self._store(script, keys, args)
        if answer is None:
            raise Overloaded("too many rooms")
        stored, entry_id, first_text = answer
        return Posted(_message(room_id, str(entry_id), user_id, str(first_text)), replayed=not int(stored))

    async def _store(self, script: AsyncScript, keys: list[str], args: list[str | int]) -> Any:
        """Run a storing script; with `?wait=N`, answer only once N replicas have what it wrote.

        WAIT counts the writes of its own connection, so it goes in one pipeline
        with the script. Fewer replicas in time: BackendUnavailable, although the
        message is stored on the primary (a retry with an idempotency key finds it).
        """
        if not self._wait:
            return await self._call(script(keys=keys, args=args), "store the message")

        async def run() -> list[Any]:
            async with self._client().pipeline(transaction=False) as pipe:
                await script(keys=keys, args=args, client=pipe)
                pipe.wait(self._wait, WAIT_MS)
                return await pipe.execute()

        answer, replicas = await self._call(run(), "store the message")
        if answer is not None and int(replicas) < self._wait:
            raise BackendUnavailable(
                f"cannot confirm the message: {replicas} of {self._wait} replicas of Redis at "
                f"{self._where} had it within {WAIT_MS} ms (it is stored on the primary)"
            )
        return answer

    async def spend(self, key: str, rate: float, burst: float) -> float:
        script = self._script(redis_lua.SPEND)
        wait = await self._call(script(keys=[BUCKET_PREFIX + key], args=[rate, burst]), "check the rate")
        return float(wait)

    async def replay(self, room_id: str, after: str) -> Replay:
        key = ROOM_PREFIX + room_id
        start = _next_id(after)
        if start is not None and _canonical(after):

            async def run() -> list[Any]:
                async with self._client().pipeline(transaction=True) as pipe:
                    pipe.xrange(key, after, after)
                    pipe.xrange(key, start, "+")
                    return await pipe.execute()

            found, tail = await self._call(run(), "read history")
            if found:
                return Replay(self._messages(room_id, tail), True)
        newest = await self._call(self._client().xrevrange(key, "+", "-", self._history), "read history")
        kept = self._messages(room_id, _newest_first(newest))
        return Replay(kept, False, kept[0].id if kept else None)

    async def history(self, room_id: str, limit: int, after: str | None, before: str | None) -> list[Message]:
        key = ROOM_PREFIX + room_id
        redis = self._client()
        if after is None and before is None:
            page = await self._call(redis.xrevrange(key, "+", "-", min(limit, self._history)), "read history")
            return self._messages(room_id, _newest_first(page))
        floor = await self._floor(key)
        if after is not None:
            start = _next_id(after)
            if start is None:
                return []
            if floor is not None and _key(floor) > _key(start):
                start = floor
            page = await self._call(redis.xrange(key, start, "+", limit), "read history")
            return self._messages(room_id, page)
        assert before is not None  # checked by the service: after or before, not both
        end = _previous_id(before)
        if end is None:
            return []
        page = await self._call(redis.xrevrange(key, end, floor or "-", limit), "read history")
        return self._messages(room_id, _newest_first(page))

    async def _floor(self, key: str) -> str | None:
        """The oldest id within the last `history` messages, when the stream keeps more.

        Approximate trimming leaves up to a stream node (100 entries) beyond it.
        """
        redis = self._client()
        length = int(await self._call(redis.xlen(key), "read history"))
        extra = length - self._history
        if extra <= 0:
            return None
        oldest = await self._call(redis.xrange(key, "-", "+", extra + 1), "read history")
        return str(oldest[-1][0]) if oldest else None

    async def last_ids(self, room_ids: Sequence[str]) -> dict[str, str | None]:
        rooms = list(room_ids)

        async def run() -> list[Any]:
            async with self._client().pipeline(transaction=False) as pipe:
                for room_id in rooms:
                    pipe.xrevrange(ROOM_PREFIX + room_id, "+", "-", 1)
                return await pipe.execute()

        newest = await self._call(run(), "read rooms") if rooms else []
        pairs = zip(rooms, newest, strict=True)
        return {room_id: str(entries[0][0]) if entries else None for room_id, entries in pairs}

    async def rooms(self, limit: int, after: str | None) -> list[str]:
        start = f"({after}" if after else "-"
        names: Any = await self._call(
            self._client().zrangebylex(ROOM_INDEX, start, "+", 0, limit), "list rooms"
        )
        return [str(name) for name in names]

    # -- presence --------------------------------------------------------------

    async def share_presence(
        self, parts: Mapping[str, PresencePart | None], ttl: float, changed: bool
    ) -> None:
        """This process's field in each room's presence hash, stamped with a deadline on Redis's clock."""
        if not parts:
            return
        script = self._script(redis_lua.SHARE_PRESENCE)
        head = [self._node, max(1, int(ttl * 1000)), PRESENCE_CHANGED]
        items = list(parts.items())

        async def run() -> list[Any]:
            async with self._client().pipeline(transaction=False) as pipe:
                for start in range(0, len(items), PRESENCE_BATCH):
                    chunk = items[start : start + PRESENCE_BATCH]
                    args: list[Any] = list(head)
                    for room_id, part in chunk:
                        notice = json.dumps({"roomId": room_id, "node": self._node}) if changed else ""
                        args += [_encode_part(part), notice]
                    await script(keys=[PRESENCE_PREFIX + r for r, _ in chunk], args=args, client=pipe)
                return await pipe.execute()

        await self._call(run(), "share presence")

    async def presence(self, room_ids: Sequence[str]) -> dict[str, list[PresencePart]]:
        """The other processes' unexpired parts; expired ones are deleted on the way."""
        if not room_ids:
            return {}
        script = self._script(redis_lua.READ_PRESENCE)
        rooms = list(room_ids)

        async def run() -> list[Any]:
            async with self._client().pipeline(transaction=False) as pipe:
                for start in range(0, len(rooms), PRESENCE_BATCH):
                    keys = [PRESENCE_PREFIX + r for r in rooms[start : start + PRESENCE_BATCH]]
                    await script(keys=keys, args=[self._node], client=pipe)
                return await pipe.execute()

        replies = await self._call(run(), "read presence")
        values = [room for reply in replies for room in reply]
        answer: dict[str, list[PresencePart]] = {}
        for room_id, found in zip(rooms, values, strict=True):
            parts = [part for part in map(_decode_part, found) if part is not None]
            if parts:
                answer[room_id] = parts
        return answer

    def _on_presence(self, data: str) -> None:
        notice = _notice(PRESENCE_CHANGED, data)
        if notice is None:
            return
        room_id, node = notice
        if node != self._node and self._sink is not None:
            self._sink.presence_changed(room_id)

    async def delete(self, room_id: str) -> None:
        """Drop the stream, keep its last id as the floor of new streams, and tell every process.

        So ids given in the room after the delete are still greater than every
        id given before it, even within the same millisecond or after Redis's
        clock went back.
        """
        notice = json.dumps({"roomId": room_id, "node": self._node})
        script = self._script(redis_lua.DELETE)
        keys = [ROOM_PREFIX + room_id, ROOM_INDEX, FLOOR, DELETED]
        await self._call(script(keys=keys, args=[room_id, notice]), "delete the room")
        if self._sink is not None:
            self._sink.deleted(room_id)

    # -- the feed --------------------------------------------------------------

    async def subscribe(self, room_id: str) -> None:
        """Fix where this room's feed starts, so nothing published after we return is missed."""
        key = ROOM_PREFIX + room_id
        newest = await self._call(self._client().xrevrange(key, "+", "-", 1), "open the room")
        # A missing (or emptied) stream starts at 0-0: its very first message is new.
        self._positions[room_id] = str(newest[0][0]) if newest else "0-0"
        self._version += 1
        self._wanted.set()
        if self._waker is None or self._waker.done():
            self._waker = asyncio.ensure_future(self._wake_reader())

    def unsubscribe(self, room_id: str) -> None:
        # The XREAD in flight may still name the stream; its entries are then ignored.
        position = self._positions.pop(room_id, None)
        if position is not None and self._resuming:  # its listeners left while Redis was away
            # What they were given is still checked once Redis is back.
            self._unchecked[room_id] = max(position, self._unchecked.get(room_id, position), key=_key)

    async def _read_loop(self) -> None:
        delay = RETRY_MIN
        while not self._closing:
            if not self._positions:
                self._wanted.clear()
                await self._wanted.wait()
                continue
            try:
                reply = await self._read()
            except _ERRORS as exc:
                self._inflight = None
                self._resuming = True
                await self._drop_reader()
                self._feed_lost("reader", exc)
                self._renew_pubsub = True
                self._wanted.clear()  # a subscribe (Redis answered it) ends the wait early
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wanted.wait()
                delay = min(delay * 2, RETRY_MAX)
                continue
            self._feed_back()
            delay = RETRY_MIN
            if reply:
                self._deliver(reply)

    async def _read(self) -> Any:
        conn = await self._reader()
        if self._resuming:
            await self._resume(conn)
            self._resuming = False
        self._inflight = self._version  # the snapshot below is exactly this version
        keys = [ROOM_PREFIX + room for room in self._positions]
        ids = list(self._positions.values())
        await conn.send_command("XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS", *keys, *ids)
        reply = await conn.read_response()
        self._inflight = None
        return reply

    async def _resume(self, conn: AbstractConnection) -> None:
        """Check what Redis holds against what this process delivered, before reading on.

        The reader reads on from the last id it delivered. A primary that lacks
        that id (promoted before it had every message) lost messages that
        listeners here were given: say so, end the room's listeners so they
        resume from their own last id (their replay answers `gap`), and read on
        from the newest entry the primary holds below it, so nothing it stored
        since is skipped, even under an id below the lost ones.
        """
        rooms = [(room, position, False) for room, position in self._unchecked.items()]
        rooms += [(room, position, True) for room, position in self._positions.items()]
        rooms = [room for room in rooms if room[1] != "0-0"]
        if not rooms:
            return
        # Per room, its last delivered id if held, else the newest entry below it.
        commands = [("XREVRANGE", ROOM_PREFIX + room, at, "-", "COUNT", 1) for room, at, _ in rooms]
        await conn.send_packed_command(conn.pack_commands(commands))
        replies = [await conn.read_response() for _ in commands]
        self._unchecked.clear()
        lost = []
        for (room_id, position, subscribed), below in zip(rooms, replies, strict=True):
            held = str(below[0][0]) if below else None
            if held == position:
                continue
            if subscribed:
                if self._positions.get(room_id) != position:
                    continue  # unsubscribed meanwhile
                if held is not None:  # None: nothing up to it; reading on from it or 0-0 is the same
                    self._positions[room_id] = held
                if self._sink is not None:
                    self._sink.interrupted(room_id)
            lost.append(f"{room_id} (delivered up to {position}, Redis has {held or 'nothing'} up to it)")
        if lost:
            log.warning(
                "Redis at %s lacks messages this process delivered in %d room(s), lost by a failover "
                "(or the room was deleted meanwhile): %s; their listeners resume and get a gap",
                self._where,
                len(lost),
                ", ".join(lost[:5]) + (", ..." if len(lost) > 5 else ""),
            )

    def _deliver(self, reply: Any) -> None:
        """Each new entry to the sink once, in stream order."""
        sink = self._sink
        if sink is None:
            return
        streams = reply.items() if isinstance(reply, dict) else reply  # RESP3 or RESP2
        for key, entries in streams:
            room_id = str(key)[len(ROOM_PREFIX) :]
            position = self._positions.get(room_id)
            if position is None or not entries:
                continue  # unsubscribed meanwhile
            floor = _key(position)
            for entry_id, fields in entries:
                message = _entry(room_id, entry_id, fields)
                if message.key > floor:
                    sink.message(message)
            if room_id in self._positions:  # a sink may unsubscribe the room
                self._positions[room_id] = max(position, str(entries[-1][0]), key=_key)

    async def _reader(self) -> AbstractConnection:
        """The reader's own connection, and its CLIENT ID (what CLIENT UNBLOCK names)."""
        if self._reader_conn is None:
            assert self._reader_pool is not None
            pool: Any = self._reader_pool  # make_connection is untyped
            conn: Any = pool.make_connection()
            try:
                await conn.connect()
                await conn.send_command("CLIENT", "ID")
                self._reader_id = int(await conn.read_response())
            except BaseException:
                with contextlib.suppress(*_ERRORS):
                    await conn.disconnect()
                raise
            self._reader_conn = conn
        return self._reader_conn

    async def _drop_reader(self) -> None:
        conn, self._reader_conn, self._reader_id = self._reader_conn, None, None
        if conn is not None:
            with contextlib.suppress(*_ERRORS):
                await conn.disconnect()

    async def _wake_reader(self) -> None:
        """Make a blocked XREAD return so the reader rebuilds it with the new room.

        CLIENT UNBLOCK may reach Redis before the XREAD it is meant for (they
        travel on different connections): it then answers 0 and we try again.
        """
        while self._inflight is not None and self._inflight < self._version:
            reader_id = self._reader_id
            if reader_id is None or self._redis is None:
                return
            try:
                if await self._redis.client_unblock(reader_id):
                    await asyncio.sleep(0)
                    continue
            except _ERRORS:
                return  # the reader meets the same failure and reconnects
            await asyncio.sleep(0.002)

    async def _subscribe_deletions(self) -> PubSub:
        pubsub = self._client().pubsub(ignore_subscribe_messages=True)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await pubsub.subscribe(DELETED, PRESENCE_CHANGED)
        except BaseException:
            await _close(pubsub)
            raise
        return pubsub

    async def _deletion_loop(self) -> None:
        delay = RETRY_MIN
        while not self._closing:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._subscribe_deletions()
                    self._renew_pubsub = False
                    delay = RETRY_MIN
                    self._feed_back()
                elif self._renew_pubsub:  # the reader lost Redis: this connection may be dead too
                    raise RedisConnectionError("renewing the subscription after a lost connection")
                notice = await self._pubsub.get_message(timeout=1.0)
            except _ERRORS as exc:
                pubsub, self._pubsub = self._pubsub, None
                if pubsub is not None:
                    await _close(pubsub)
                self._feed_lost("deletion notices", exc)  # a deletion may be missed meanwhile
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if notice is not None and notice.get("type") == "message":
                if notice.get("channel") == PRESENCE_CHANGED:
                    self._on_presence(notice["data"])
                else:
                    self._on_deleted(notice["data"])

    def _on_deleted(self, data: str) -> None:
        notice = _notice(DELETED, data)
        if notice is None:
            return
        room_id, node = notice
        if node != self._node and self._sink is not None:
            self._sink.deleted(room_id)

    def _feed_lost(self, what: str, exc: BaseException) -> None:
        """End every local listener: they resume from their last id once Redis is back."""
        if self._closing:
            return
        if not self._feed_down:
            self._feed_down = True
            log.warning("lost Redis at %s (%s: %s): ending streams", self._where, what, _reason(exc))
        if self._sink is not None:
            for room_id in list(self._positions):
                self._sink.interrupted(room_id)

    def _feed_back(self) -> None:
        if self._feed_down:
            self._feed_down = False
            log.warning("Redis at %s is back", self._where)

    # -- helpers ---------------------------------------------------------------

    def _client(self) -> Redis:
        if self._redis is None:
            raise BackendUnavailable("the Redis backend is not started")
        return self._redis

    def _script(self, source: str) -> AsyncScript:
        """A Lua script, registered (and its SHA1 computed) once per client, not per call."""
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._client().register_script(source)
        return script

    async def _call(self, command: Awaitable[_T], doing: str) -> _T:
        """Await one Redis call; every failure becomes BackendUnavailable."""
        try:
            return await command
        except ResponseError as exc:  # reachable, but refused: out of memory, read-only replica...
            raise BackendUnavailable(
                f"cannot {doing}: Redis at {self._where} refused ({_refusal(exc)})"
            ) from None
        except _ERRORS as exc:
            raise BackendUnavailable(
                f"cannot {doing}: Redis at {self._where} is unreachable ({_reason(exc)})"
            ) from None

    @staticmethod
    def _messages(room_id: str, entries: Any) -> list[Message]:
        return [_entry(room_id, entry_id, fields) for entry_id, fields in entries]


def _key_name(room_id: str, user_id: str, key: str) -> str:
    """Where an idempotency key lives; the user's length keeps user and key apart."""
    return f"{KEY_PREFIX}{room_id}:{len(user_id)}:{user_id}:{key}"
def _notice(channel: str, data: str) -> tuple[str, object] | None:
    """A pub/sub notice's room and node; None (and a warning) when malformed."""
    try:
        notice = json.loads(data)
        return str(notice["roomId"]), notice.get("node")
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("ignoring a malformed notice on %s: %.100r", channel, data)
        return None


def _encode_part(part: PresencePart | None) -> str:
    """`{"u": {userId: [connections, since ms]}, "a": anonymous}`, compact: it is stored per process."""
    if part is None:
        return ""
    users = {user: [count, since] for user, (count, since) in part.users.items()}
    return json.dumps({"u": users, "a": part.anonymous}, ensure_ascii=False, separators=(",", ":"))


def _decode_part(data: Any) -> PresencePart | None:
    try:
        value = json.loads(data)
        users = {str(u): (int(c), int(s)) for u, (c, s) in value["u"].items()}
        return PresencePart(users, int(value["a"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("ignoring a malformed presence part: %.100r", data)
        return None


def _message(room_id: str, entry_id: str, user_id: str, text: str) -> Message:
    """The message's time is its id's milliseconds: Redis's clock, the same on every node."""
    return Message(entry_id, room_id, user_id, text, format_time(int(entry_id.partition("-")[0])))


def _entry(room_id: str, entry_id: Any, fields: Any) -> Message:
    """A stream entry as a message; fields come as a dict (XRANGE) or a flat list (raw XREAD)."""
    if not isinstance(fields, dict):
        fields = dict(zip(fields[::2], fields[1::2], strict=False))
    return _message(room_id, str(entry_id), str(fields.get("userId", "")), str(fields.get("text", "")))


def _newest_first(entries: Any) -> list[Any]:
    return list(reversed(entries or []))


async def _close(pubsub: Any) -> None:
    with contextlib.suppress(*_ERRORS):
        await pubsub.aclose()


def _key(stream_id: str) -> tuple[int, int]:
    return id_key(stream_id) or (0, 0)


def _canonical(message_id: str) -> bool:
    """An id as Redis writes it (no leading zeros), each part within 64 bits."""
    parts = id_key(message_id)
    return parts is not None and max(parts) <= _MAX and message_id == f"{parts[0]}-{parts[1]}"


def _next_id(message_id: str) -> str | None:
    """The smallest stream id after this one (XRANGE's start), None past the end."""
    ms, seq = _key(message_id)
    if ms > _MAX or (ms == _MAX and seq >= _MAX):
        return None
    if seq >= _MAX:
        return f"{ms + 1}-0"
    return f"{ms}-{seq + 1}"


def _previous_id(message_id: str) -> str | None:
    """The largest stream id before this one (XREVRANGE's end), None before the start."""
    ms, seq = _key(message_id)
    if ms > _MAX:
        return f"{_MAX}-{_MAX}"
    if seq > _MAX:
        return f"{ms}-{_MAX}"
    if seq > 0:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-{_MAX}" if ms > 0 else None


def _refusal(exc: ResponseError) -> str:
    """Redis's own words, without redis-py's pipeline wrapping around them."""
    text = str(exc)
    _, sep, inner = text.partition(" caused error: ")
    if sep:
        text = inner.strip("(),").strip("'\"")
    return text


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, MasterNotFoundError):  # its text repeats every sentinel's whole client
        return "no sentinel names a primary that is up"
    return str(exc) or type(exc).__name__
