"""What the sqlite backend adds to the shared suite: the file, its lock, ids
whatever the clock does, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roomchat.backends.sqlite import SqliteBackend
from roomchat.core import BackendUnavailable, ValidationError
from roomchat.core.idempotency import KEY_TTL_MS
from roomchat.core.message import format_time
from roomchat.core.ports import BackendSettings
from roomchat.testing.backend_suite import RecordingSink, SteppedClock
from tests.support import roomchat_process


async def _started(path: Path, clock: SteppedClock, history: int = 1000) -> SqliteBackend:
    backend = SqliteBackend(f"sqlite:///{path}", BackendSettings(history=history), clock=clock)
    await backend.start(RecordingSink())
    return backend


async def test_a_clock_stepped_back_across_a_restart_never_lowers_an_id(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    clock = SteppedClock(2_000_000_000_000)  # 2033: the machine's clock ran ahead
    backend = await _started(path, clock)
    first = [await backend.publish("r", "ann", f"m{i}") for i in range(3)]
    deleted = await backend.publish("gone", "ann", "its room is deleted: its ids still count")
    await backend.delete("gone")
    await backend.close()

    clock.ms = 1_800_000_000_000  # fixed: ten years back, across the restart
    backend = await _started(path, clock)
    try:
        again = [await backend.publish(room, "ann", "after") for room in ("r", "gone", "new")]
        assert all(m.key > deleted.key > first[-1].key for m in again)
        assert [m.key for m in again] == sorted(m.key for m in again)
        assert again[0].time == "2027-01-15T08:00:00.000Z"  # the time is the clock's, the id is not
        clock.ms -= 60_000  # and back again while running
        later = await backend.publish("r", "ann", "later")
        assert later.key > again[-1].key
        replay = await backend.replay("r", first[0].id)
        assert replay.found and replay.messages == [*first[1:], again[0], later]
    finally:
        await backend.close()


async def test_a_lower_history_at_restart_trims_each_room(tmp_path: Path) -> None:
    path, clock = tmp_path / "chat.db", SteppedClock(1_800_000_000_000)
    backend = await _started(path, clock, history=10)
    posted = [await backend.publish("r", "ann", f"m{i}") for i in range(10)]
    await backend.close()
    backend = await _started(path, clock, history=4)
    try:
        assert await backend.history("r", 50, None, None) == posted[-4:]
        newer = await backend.publish("r", "ann", "newer")
        assert await backend.history("r", 50, None, None) == [*posted[-3:], newer]
    finally:
        await backend.close()


async def test_concurrent_posts_share_commits(tmp_path: Path) -> None:
    backend = await _started(tmp_path / "chat.db", SteppedClock(1_800_000_000_000))
    try:
        posted = await asyncio.gather(*(backend.publish(f"r{i % 4}", "ann", f"m{i}") for i in range(400)))
        assert len({m.id for m in posted}) == 400
        assert backend.commits < 100  # group commit: a transaction per post would be 400
    finally:
        await backend.close()


async def test_a_file_in_use_by_another_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    first = await _started(path, SteppedClock(1_800_000_000_000))
    try:
        with pytest.raises(BackendUnavailable, match=r"sqlite file .*chat\.db: another roomchat"):
            await _started(path, SteppedClock(1_800_000_000_000))
        with roomchat_process("--adapter", "rest", "--port", "rest=0", "--backend", f"sqlite:///{path}.2"):
            second = subprocess.run(
                [sys.executable, "-m", "roomchat", "serve", "--adapter", "rest", "--port", "rest=0",
                 "--backend", f"sqlite:///{path}.2"],
                capture_output=True, text=True, timeout=20,
            )  # fmt: skip
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"roomchat: error: cannot open the sqlite file {path}.2: another roomchat process is using it"
        ]
    finally:
        await first.close()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("sqlite://chat.db", "takes sqlite:///PATH"),
        ("sqlite:///", "takes sqlite:///PATH"),
        ("sqlite:///?sync=full", "needs a file"),
        ("sqlite:///chat.db?mode=ro", "takes only"),
        ("sqlite:///chat.db?sync=off", "takes only"),
        ("sqlite:///:memory:", "needs a file"),
    ],
)
def test_a_malformed_url_is_refused_before_opening(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        SqliteBackend(url)


def test_a_relative_path_is_relative_and_four_slashes_are_absolute() -> None:
    from roomchat.backends.sqlite.store import path_of

    assert path_of("sqlite:///chat.db") == ("chat.db", "normal")
    assert path_of("sqlite:////var/lib/roomchat/chat.db?sync=full") == ("/var/lib/roomchat/chat.db", "full")
    assert path_of("sqlite:///my%20chat.db") == ("my chat.db", "normal")


async def test_posts_in_a_closed_backend_are_unavailable(tmp_path: Path) -> None:
    backend = await _started(tmp_path / "chat.db", SteppedClock(1_800_000_000_000))
    await backend.close()
    with pytest.raises(BackendUnavailable):
        await backend.publish("r", "ann", "late")
    with pytest.raises(BackendUnavailable):
        await backend.history("r", 5, None, None)
    assert not await backend.ping()


async def test_keys_hold_no_text_outlive_history_and_are_pruned_after_24_hours(tmp_path: Path) -> None:
    clock = SteppedClock(2_000_000_000_000)
    backend = await _started(tmp_path / "chat.db", clock, history=50)
    try:
        text = "x" * 3000
        posted = []
        for start in range(0, 2000, 500):  # keyed 3 KB posts, many to a commit
            batch = [backend.publish_once("r", "ann", text, f"k{i}") for i in range(start, start + 500)]
            posted += await asyncio.gather(*batch)
        with sqlite3.connect(tmp_path / "chat.db") as db:
            count, size = db.execute(
                "SELECT count(*), sum(length(room) + length(user_id) + length(key) + length(fingerprint))"
                " FROM keys"
            ).fetchone()
        assert count == 2000 and size < 2000 * 40  # a key and a fingerprint, not 3 KB of text
        again = await backend.publish_once("r", "ann", text, "k0")  # long gone from history
        assert again.replayed and again.message == posted[0].message
        with pytest.raises(ValidationError):
            await backend.publish_once("r", "ann", "another text", "k0")
        clock.ms += KEY_TTL_MS + 1
        await backend.publish("r", "ann", "a day later")  # a commit prunes what expired
        with sqlite3.connect(tmp_path / "chat.db") as db:
            assert db.execute("SELECT count(*) FROM keys").fetchone() == (0,)
        assert not (await backend.publish_once("r", "ann", text, "k0")).replayed
    finally:
        await backend.close()


async def test_keys_kept_by_an_older_version_still_answer(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE idempotency (room TEXT NOT NULL, user_id TEXT NOT NULL, key TEXT NOT NULL,"
            " id TEXT NOT NULL, text TEXT NOT NULL, time TEXT NOT NULL, expires_ms INTEGER NOT NULL,"
            " PRIMARY KEY (room, user_id, key)) WITHOUT ROWID"
        )
        expires = int(time.time() * 1000) + 3_600_000
        row = ("r", "ann", "k", "5-0", "hi", format_time(5), expires)
        db.execute("INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    backend = await _started(path, SteppedClock(int(time.time() * 1000)))
    try:
        again = await backend.publish_once("r", "ann", "hi", "k")
        assert again.replayed and again.message.id == "5-0" and again.message.text == "hi"
    finally:
        await backend.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'idempotency'").fetchone() is None
