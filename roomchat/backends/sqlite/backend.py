"""The SQLite backend on the event loop: jobs to the writer thread, reads to the reader thread."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from roomchat.backends.one_process import OneProcess
from roomchat.backends.sqlite.store import SCHEMA, Reads, connect, path_of
from roomchat.backends.sqlite.writer import Delete, Job, Outcome, Post, Writer
from roomchat.core.errors import BackendUnavailable
from roomchat.core.ids import Clock, wall_ms
from roomchat.core.message import Message
from roomchat.core.ports import BackendSettings, BackendSink, Posted, Replay

_T = TypeVar("_T")

# The writer takes the GIL back after each SQLite call. A busy event loop keeps
# it for the whole switch interval (5 ms by default) before handing it over, so
# a commit of a few statements could wait tens of milliseconds while the loop
# fans messages out. 0.5 ms keeps the writer's turn short; the loop loses
# little, since the only other threads are this backend's two.
SWITCH_INTERVAL = 0.0005


class SqliteBackend(OneProcess):
    """History and ids in one SQLite file, for one process (the file is locked).

    Nothing blocks the event loop on disk: writes go to one writer thread that
    commits many posts at once, reads to one reader thread of their own (WAL
    lets it read while the writer writes). A post is answered, and delivered,
    only once its transaction has committed.
    """

    def __init__(self, url: str, settings: BackendSettings | None = None, *, clock: Clock = wall_ms) -> None:
        settings = settings or BackendSettings()
        if settings.history < 1:
            raise ValueError("history must be at least 1")
        self._path, self._sync = path_of(url)
        self._settings = settings
        self._clock = clock
        self._subscribed: set[str] = set()
        self._sink: BackendSink | None = None
        self._lock: int | None = None  # the file descriptor holding the process lock
        self._writer: Writer | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._reads: Reads | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self, sink: BackendSink) -> None:
        """Open (or create) the file, or raise BackendUnavailable with a one-line reason."""
        self._sink = sink
        loop = asyncio.get_running_loop()
        try:
            self._writer = await asyncio.to_thread(self._open_writer, loop)
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="roomchat-sqlite-reader")
            self._reads = await loop.run_in_executor(self._reader, lambda: Reads(connect(self._path)))
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise BackendUnavailable(f"cannot open the sqlite file {self._path}: {exc}") from None
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
        self._writer.start()

    def _open_writer(self, loop: asyncio.AbstractEventLoop) -> Writer:
        self._lock = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError("another roomchat process is using it") from None
        conn = connect(self._path, self._sync)
        conn.executescript(SCHEMA)
        s = self._settings
        writer = Writer(conn, loop, self._done, history=s.history, max_rooms=s.max_rooms, clock=self._clock)
        writer.trim_to_history()
        return writer

    async def close(self) -> None:
        self._subscribed.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.stop)  # the posts already queued still commit
        reader, reads, self._reader, self._reads = self._reader, self._reads, None, None
        if reader is not None:
            if reads is not None:
                await asyncio.get_running_loop().run_in_executor(reader, reads.conn.close)
            reader.shutdown()
        if self._lock is not None:
            os.close(self._lock)  # and with it the lock
            self._lock = None

    @property
    def commits(self) -> int:
        """Transactions committed since start (group commit: several posts share one)."""
        return self._writer.commits if self._writer is not None else 0

    async def ping(self) -> bool:
        return self._writer is not None and self._writer.alive

    # -- writes ----------------------------------------------------------------

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        return (await self._post(Post(room_id, user_id, text, self._future()))).message

    async def publish_once(self, room_id: str, user_id: str, text: str, key: str) -> Posted:
        """The key is looked up and stored in the message's own transaction: a post whose
        answer was lost is found by its retry, even after a crash once it had committed."""
        return await self._post(Post(room_id, user_id, text, self._future(), key))

    @staticmethod
    def _future() -> asyncio.Future[Posted]:
        return asyncio.get_running_loop().create_future()

    async def _post(self, post: Post) -> Posted:
        self._writing().put(post)
        return await post.future

    async def delete(self, room_id: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writing().put(Delete(room_id, future))
        await future

    def _writing(self) -> Writer:
        if self._writer is None or not self._writer.alive:
            raise BackendUnavailable("the sqlite backend is not running")
        return self._writer

    def _done(self, outcomes: list[tuple[Job, Outcome]]) -> None:
        """On the loop, once a batch has committed: deliver, then answer, in order."""
        sink = self._sink
        for job, outcome in outcomes:
            if isinstance(outcome, Exception):
                if not job.future.done():
                    job.future.set_exception(outcome)
                continue
            if isinstance(job, Post):
                assert isinstance(outcome, Posted)
                if sink is not None and job.room_id in self._subscribed and not outcome.replayed:
                    sink.message(outcome.message)
                if not job.future.done():
                    job.future.set_result(outcome)
            else:
                if sink is not None:
                    sink.deleted(job.room_id)
                if not job.future.done():
                    job.future.set_result(None)

    # -- reads -----------------------------------------------------------------

    async def _read(self, query: Callable[[Reads], _T]) -> _T:
        reader, reads = self._reader, self._reads
        if reader is None or reads is None:
            raise BackendUnavailable("the sqlite backend is not running")
        try:
            return await asyncio.get_running_loop().run_in_executor(reader, query, reads)
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"cannot read the sqlite file: {exc}") from None

    async def replay(self, room_id: str, after: str) -> Replay:
        messages, found = await self._read(lambda r: r.replay(room_id, after))
        if found:
            return Replay(messages, True)
        return Replay(messages, False, messages[0].id if messages else None)

    async def history(self, room_id: str, limit: int, after: str | None, before: str | None) -> list[Message]:
        return await self._read(lambda r: r.history(room_id, limit, after, before))

    async def last_ids(self, room_ids: Sequence[str]) -> dict[str, str | None]:
        return await self._read(lambda r: {room_id: r.last_id(room_id) for room_id in room_ids})

    async def rooms(self, limit: int, after: str | None) -> list[str]:
        return await self._read(lambda r: r.rooms(limit, after))

    # -- the feed (one process: the writer's commits are the feed) -----------------

    async def subscribe(self, room_id: str) -> None:
        self._subscribed.add(room_id)

    def unsubscribe(self, room_id: str) -> None:
        self._subscribed.discard(room_id)
