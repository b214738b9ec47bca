"""A sqlite file that goes bad under a running server (issue 24, item 8): said once in the log
and by /healthz (503 with the reason), never per request and never silently."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx

from tests.support import roomchat_process

TEXT = "x" * 4000


async def post_many(client: httpx.AsyncClient, base: str, room: str, count: int) -> list[int]:
    async def one(i: int) -> int:
        return (
            await client.post(f"{base}/api/room/{room}", json={"userId": "u", "text": f"{i} {TEXT}"})
        ).status_code

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def logged(server_proc: object) -> str:
    proc = server_proc  # a Popen whose stderr is a pipe
    return proc.stderr.read()  # type: ignore[attr-defined, no-any-return]


async def test_a_file_corrupted_in_the_middle_is_logged_once_and_healthz_says_so(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    with roomchat_process("--adapter", "rest", "--port", "rest=0", "--backend", f"sqlite:///{db}") as server:
        base = server.urls["rest"]
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            assert set(await post_many(client, base, "old", 800)) == {201}
            assert (await client.get(f"{base}/healthz")).status_code == 200
            with open(db, "r+b") as f:  # garbage over the middle of the file, header untouched
                size = os.path.getsize(db)
                f.seek(size // 3)
                f.write(b"\xa5" * (size // 3))
            statuses = [
                (await client.get(f"{base}/api/room/old/messages?limit=1000")).status_code for _ in range(5)
            ]
            assert statuses == [503] * 5
            health = await client.get(f"{base}/healthz")
            assert health.status_code == 503
            assert "corrupt" in health.json()["backend"] and "malformed" in health.json()["backend"]
        assert server.terminate() == 0
        log = logged(server.proc)
    assert log.count("cannot be read") == 1, log  # once, not once per request


async def test_a_full_disk_is_logged_once_and_healthz_says_so_until_writes_commit_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "chat.db"
    args = ("--adapter", "rest", "--port", "rest=0", "--backend", f"sqlite:///{db}")
    with roomchat_process(*args, command=("tests.backends.small_files", str(2 * 1024 * 1024))) as server:
        base = server.urls["rest"]
        async with httpx.AsyncClient(timeout=30) as client:
            statuses = []
            for i in range(1000):
                statuses.append(await post_many(client, base, f"r{i % 3}", 1))
                if statuses[-1] == [503]:
                    break
            assert statuses[-1] == [503], "the file never filled"
            for _ in range(3):
                assert (await post_many(client, base, "r0", 1)) == [503]
            health = await client.get(f"{base}/healthz")
            # RLIMIT_FSIZE makes write(2) fail with EFBIG, which sqlite reports as an I/O error
            # (a really full disk is SQLITE_FULL, "database or disk is full"): the same path.
            assert health.status_code == 503, health.text
            assert health.json()["backend"] == "sqlite file io: disk I/O error"
        assert server.terminate() == 0
        log = logged(server.proc)
    assert log.count("cannot be written") == 1, log
