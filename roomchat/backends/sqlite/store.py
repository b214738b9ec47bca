"""The SQLite file: its schema, how it is opened, and the reads both threads share.

Messages are rows keyed by room and id (`ms`, `seq`: the two parts of
`<ms>-<seq>`); `rooms` holds each room with history and its message count;
`meta` holds the last id ever given, so ids never go back, deleted rooms and
a clock stepped back across a restart included. `keys` holds each idempotency
key for 24 hours with its message's id and time and its text's fingerprint
(roomchat.core.idempotency), not the text; `idempotency`, where versions
before it kept the text too, is moved into it once.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import unquote

from roomchat.core.idempotency import KEY_TTL_MS, fingerprint
from roomchat.core.ids import wall_ms
from roomchat.core.message import IdKey, Message, format_time, id_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    room TEXT NOT NULL,
    ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    text TEXT NOT NULL,
    time_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_room ON messages (room, ms, seq);
CREATE TABLE IF NOT EXISTS rooms (room TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys (
    room TEXT NOT NULL,
    user_id TEXT NOT NULL,
    key TEXT NOT NULL,
    ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    fingerprint BLOB NOT NULL,
    PRIMARY KEY (room, user_id, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_by_time ON keys (time_ms);
"""

_MAX = 2**63 - 1  # SQLite's largest integer: a larger id part is clamped to it
COLUMNS = "ms, seq, user_id, text, time_ms"


SYNC_MODES = ("normal", "full")


def path_of(url: str) -> tuple[str, str]:
    """`sqlite:///chat.db` -> (`chat.db`, `normal`); `sqlite:////var/lib/chat.db?sync=full`
    -> (`/var/lib/chat.db`, `full`) (SQLAlchemy's slashes); ValueError for anything else."""
    scheme, sep, rest = url.partition("://")
    if scheme != "sqlite" or not sep or not rest.startswith("/") or rest == "/":
        raise ValueError(f"the sqlite backend takes sqlite:///PATH, got {url!r}")
    path, _, query = rest[1:].partition("?")
    sync = "normal"
    if query:
        name, _, value = query.partition("=")
        if name != "sync" or value not in SYNC_MODES:
            raise ValueError(f"the sqlite backend takes only ?sync=normal or ?sync=full, got {query!r}")
        sync = value
    if path in ("", ":memory:"):
        raise ValueError("the sqlite backend needs a file: sqlite:///PATH (--backend memory keeps nothing)")
    return unquote(path), sync


def connect(path: str, sync: str = "normal") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), in WAL mode.

    `normal`: a commit is in the WAL file before the post is answered, so it
    survives the process being killed (the contract's crash); `full` also
    waits for the disk (fsync) at every commit, so it survives power loss too,
    at about one disk flush per group of posts. Each connection is used by one
    thread at a time, but may be opened in another.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync.upper()}")
    return conn


def move_old_keys(conn: sqlite3.Connection) -> None:
    """Move the unexpired keys of the `idempotency` table (text and all) to `keys`, once."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'idempotency'").fetchone():
        return
    rows = conn.execute(
        "SELECT room, user_id, key, id, text, time, expires_ms FROM idempotency WHERE expires_ms > ?",
        (wall_ms(),),
    ).fetchall()
    conn.execute("BEGIN IMMEDIATE")
    for room, user_id, key, message_id, text, _, expires_ms in rows:
        ms, seq = clamp(id_key(message_id) or (0, 0))
        conn.execute(
            "INSERT OR IGNORE INTO keys VALUES (?, ?, ?, ?, ?, ?, ?)",
            (room, user_id, key, ms, seq, expires_ms - KEY_TTL_MS, fingerprint(text)),
        )
    conn.execute("DROP TABLE idempotency")
    conn.execute("COMMIT")


def clamp(key: IdKey) -> IdKey:
    """An id key SQLite can bind: parts past its largest integer are cut to it."""
    return min(key[0], _MAX), min(key[1], _MAX)


def message_of(room_id: str, row: tuple[int, int, str, str, int]) -> Message:
    ms, seq, user_id, text, time_ms = row
    return Message(f"{ms}-{seq}", room_id, user_id, text, format_time(time_ms))


class Reads:
    """Queries on one connection; used by the reader thread only."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def replay(self, room_id: str, after: str) -> tuple[list[Message], bool]:
        """(messages after `after`, True) if it is in history; else (all of history, False)."""
        key = id_key(after)
        conn = self.conn
        conn.execute("BEGIN")  # one snapshot for both reads
        try:
            if key is not None and f"{key[0]}-{key[1]}" == after and max(key) <= _MAX:
                found = conn.execute(
                    "SELECT 1 FROM messages WHERE room = ? AND ms = ? AND seq = ?", (room_id, *key)
                ).fetchone()
                if found:
                    return self._after(room_id, key, -1), True
            return self._after(room_id, (0, -1), -1), False
        finally:
            conn.execute("COMMIT")

    def history(self, room_id: str, limit: int, after: str | None, before: str | None) -> list[Message]:
        if after is not None:
            return self._after(room_id, clamp(id_key(after) or (0, 0)), limit)
        newest = f"SELECT {COLUMNS} FROM messages WHERE room = ?{{}} ORDER BY ms DESC, seq DESC LIMIT ?"
        if before is None:
            rows = self.conn.execute(newest.format(""), (room_id, limit)).fetchall()
        else:
            ceiling = clamp(id_key(before) or (0, 0))
            query = newest.format(" AND (ms, seq) < (?, ?)")
            rows = self.conn.execute(query, (room_id, *ceiling, limit)).fetchall()
        return [message_of(room_id, row) for row in reversed(rows)]

    def _after(self, room_id: str, key: IdKey, limit: int) -> list[Message]:
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM messages WHERE room = ? AND (ms, seq) > (?, ?) ORDER BY ms, seq LIMIT ?",
            (room_id, *key, limit),
        ).fetchall()
        return [message_of(room_id, row) for row in rows]

    def last_id(self, room_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT ms, seq FROM messages WHERE room = ? ORDER BY ms DESC, seq DESC LIMIT 1", (room_id,)
        ).fetchone()
        return f"{row[0]}-{row[1]}" if row else None

    def rooms(self, limit: int, after: str | None) -> list[str]:
        rows = self.conn.execute(
            "SELECT room FROM rooms WHERE room > ? ORDER BY room LIMIT ?", (after or "", limit)
        ).fetchall()
        return [row[0] for row in rows]
