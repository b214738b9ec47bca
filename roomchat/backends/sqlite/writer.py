"""The one writer thread: posts and deletions, many to a transaction (group commit).

The event loop queues a job and awaits its future; the thread takes every job
waiting, applies them in one transaction, commits, and only then hands the
outcomes back to the loop, in order. While one commit is on its way to disk
the next posts queue up, so under load a commit carries many posts.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass

from roomchat.backends.sqlite.store import COLUMNS, message_of
from roomchat.core.errors import BackendUnavailable, Overloaded, ValidationError
from roomchat.core.idempotency import KEY_TTL_MS, KeptKey, fingerprint, replayed
from roomchat.core.ids import Clock, IdSequence
from roomchat.core.message import Message, format_time
from roomchat.core.ports import Posted

MAX_BATCH = 1024  # jobs in one transaction
MAX_KEYS = 1_000_000  # idempotency keys kept at most (about 100 MB on disk); past it the oldest go


@dataclass(slots=True)
class Post:
    room_id: str
    user_id: str
    text: str
    future: asyncio.Future[Posted]
    key: str | None = None  # an idempotency key: stored with the message, in its transaction


@dataclass(slots=True)
class Delete:
    room_id: str
    future: asyncio.Future[None]


Job = Post | Delete
Outcome = Posted | None | Exception
Done = Callable[[list[tuple[Job, Outcome]]], None]
"""Called on the event loop with each job of a committed (or failed) batch, in order."""


class Writer:
    """Owns the write connection and what it caches: room counts and the last id."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        done: Done,
        *,
        history: int,
        max_rooms: int,
        clock: Clock,
    ) -> None:
        self._conn = conn
        self._loop = loop
        self._done = done
        self._history = history
        self._max_rooms = max_rooms
        self._clock = clock
        self._counts: dict[str, int] = dict(conn.execute("SELECT room, count FROM rooms").fetchall())
        floor = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self._ids = IdSequence(clock, (floor.get("last_ms", 0), floor.get("last_seq", 0)))
        self._keys: int = conn.execute("SELECT count(*) FROM keys").fetchone()[0]
        self._pruned = 0  # when expired keys were last dropped (the clock's ms)
        self._now = 0  # the time of the message _store made last
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.commits = 0  # transactions committed: under load, far fewer than posts
        self._thread = threading.Thread(target=self._run, name="roomchat-sqlite-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, job: Job) -> None:
        self._jobs.put(job)

    def stop(self) -> None:
        """Finish the jobs queued so far, then end the thread (blocks: call it off the loop)."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._conn.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            outcomes = self._commit(batch)
            self._loop.call_soon_threadsafe(self._done, outcomes)

    def _commit(self, batch: list[Job]) -> list[tuple[Job, Outcome]]:
        """Apply the batch in one transaction; every job fails alike if it cannot commit."""
        counts_before = {job.room_id: self._counts.get(job.room_id) for job in batch}
        last_before, keys_before = self._ids.last, self._keys
        outcomes: list[tuple[Job, Outcome]] = []
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                outcomes.append((job, self._post(job) if isinstance(job, Post) else self._delete(job)))
            self._prune_keys()
            ms, seq = self._ids.last
            if (ms, seq) != last_before:
                last = (("last_ms", ms), ("last_seq", seq))
                self._conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", last)
            self._conn.execute("COMMIT")
            self.commits += 1
        except Exception as exc:  # sqlite3.Error (disk full, I/O error...), or a bug: never a hung post
            with contextlib.suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            self._ids.last = last_before
            self._keys = keys_before
            for room_id, count in counts_before.items():
                if count is None:
                    self._counts.pop(room_id, None)
                else:
                    self._counts[room_id] = count
            failure = BackendUnavailable(f"cannot write the sqlite file: {exc}")
            failure.__cause__ = exc  # what kind of fault it is, for /healthz (faults.py)
            return [(job, failure) for job in batch]
        return outcomes

    def _post(self, job: Post) -> Outcome:
        if job.key is not None:
            earlier = self._earlier(job, job.key)
            if earlier is not None:
                return earlier
        posted = self._store(job)
        if job.key is not None and isinstance(posted, Posted):
            ms, seq = posted.message.key
            self._conn.execute(
                "INSERT OR REPLACE INTO keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.room_id, job.user_id, job.key, ms, seq, self._now, fingerprint(job.text)),
            )
            self._keys += 1
        return posted

    def _earlier(self, job: Post, key: str) -> Outcome | None:
        """The answer to a retry of a post kept under `key`, or None if there is none."""
        row = self._conn.execute(
            "SELECT ms, seq, time_ms, fingerprint FROM keys WHERE room = ? AND user_id = ? AND key = ?",
            (job.room_id, job.user_id, key),
        ).fetchone()
        if row is None or row[2] + KEY_TTL_MS <= self._clock():
            return None
        kept = KeptKey((row[0], row[1]), row[2], row[3])
        query = f"SELECT {COLUMNS} FROM messages WHERE room = ? AND ms = ? AND seq = ?"
        row = self._conn.execute(query, (job.room_id, *kept.message_key)).fetchone()
        first = message_of(job.room_id, row) if row is not None else None
        try:
            return Posted(replayed(first, job.room_id, job.user_id, job.text, kept), replayed=True)
        except ValidationError as refused:
            return refused

    def _prune_keys(self) -> None:
        """Drop expired keys (at most once a second), and the oldest past MAX_KEYS."""
        now = self._clock()
        if now < self._pruned + 1000 and self._keys <= MAX_KEYS:
            return
        self._pruned = now
        gone = self._conn.execute("DELETE FROM keys WHERE time_ms <= ?", (now - KEY_TTL_MS,)).rowcount
        if self._keys - gone > MAX_KEYS:
            gone += self._conn.execute(
                "DELETE FROM keys WHERE (room, user_id, key) IN"
                " (SELECT room, user_id, key FROM keys ORDER BY time_ms LIMIT ?)",
                (self._keys - gone - MAX_KEYS,),
            ).rowcount
        self._keys = max(0, self._keys - gone)

    def _store(self, job: Post) -> Outcome:
        count = self._counts.get(job.room_id)
        if count is None:
            if self._max_rooms and len(self._counts) >= self._max_rooms:
                return Overloaded("too many rooms")
            count = 0
        (ms, seq), now = self._ids.next()
        self._now = now  # the message's time: its key's, if it has one
        execute = self._conn.execute
        execute(
            "INSERT INTO messages (room, ms, seq, user_id, text, time_ms) VALUES (?, ?, ?, ?, ?, ?)",
            (job.room_id, ms, seq, job.user_id, job.text, now),
        )
        kept = min(count + 1, self._history)
        if count + 1 > kept:  # the oldest go: history keeps exactly the last N
            self._trim(job.room_id, count + 1 - kept)
        if kept != count:
            execute("INSERT OR REPLACE INTO rooms (room, count) VALUES (?, ?)", (job.room_id, kept))
        self._counts[job.room_id] = kept
        return Posted(Message(f"{ms}-{seq}", job.room_id, job.user_id, job.text, format_time(now)))

    def _trim(self, room_id: str, drop: int) -> None:
        self._conn.execute(
            "DELETE FROM messages WHERE rowid IN "
            "(SELECT rowid FROM messages WHERE room = ? ORDER BY ms, seq LIMIT ?)",
            (room_id, drop),
        )

    def trim_to_history(self) -> None:
        """At start: rooms kept under a larger --history lose their oldest messages now."""
        over = [(room, count) for room, count in self._counts.items() if count > self._history]
        if not over:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        for room_id, count in over:
            self._trim(room_id, count - self._history)
            self._conn.execute("UPDATE rooms SET count = ? WHERE room = ?", (self._history, room_id))
            self._counts[room_id] = self._history
        self._conn.execute("COMMIT")

    def _delete(self, job: Delete) -> Outcome:
        if self._counts.pop(job.room_id, None) is not None:
            self._conn.execute("DELETE FROM messages WHERE room = ?", (job.room_id,))
            self._conn.execute("DELETE FROM rooms WHERE room = ?", (job.room_id,))
        return None
