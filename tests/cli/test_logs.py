"""`--log-json`, `--access-log` and the start-up lines, as a real `roomchat serve` prints them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.backends.redis_server import RedisServer, redis_server

MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


Serving = tuple[subprocess.Popen[str], list[str], dict[str, str]]


@contextmanager
def serving(*args: str, listening: int = 1) -> Iterator[Serving]:
    """`roomchat serve ARGS`; what it printed on stdout up to its last `listening` line, and the urls."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "roomchat", "serve", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ,
    )  # fmt: skip
    said: list[str] = []
    urls: dict[str, str] = {}
    try:
        assert proc.stdout is not None
        while len(urls) < listening:
            line = proc.stdout.readline()
            assert line, f"roomchat exited early: {proc.stderr.read() if proc.stderr else ''}"
            said.append(line.rstrip("\n"))
            found = re.search(r"(\w+) listening on (\S+?)\"?(?:,|$)", line)
            if found:
                urls[found[1]] = found[2]
        yield proc, said, urls
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return out, err


def as_json(lines: list[str]) -> list[dict[str, Any]]:
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    for entry in parsed:
        assert MS_UTC.match(entry["time"]), entry
    return parsed


def test_log_json_makes_every_line_json_stdout_included() -> None:
    with serving("--adapter", "html", "--adapter", "rest", "--port", "rest=0", "--port", "html=0",
                 "--log-json", listening=2) as (proc, said, urls):  # fmt: skip
        httpx.get(f"{urls['rest']}/api/room/lobby/messages", timeout=5)
        out, err = stop(proc)
    lines = as_json(said + out.splitlines())
    assert [entry["message"] for entry in lines[:3]] == [
        "serving html, rest (chosen with --adapter)",
        f"html listening on {urls['html']}",
        f"rest listening on {urls['rest']}",
    ]
    assert lines[2]["adapter"] == "rest" and lines[2]["url"] == urls["rest"]
    logged = as_json(err.splitlines())
    assert any("open-file limit" in entry["message"] for entry in logged)
    assert not any(entry["logger"] == "roomchat.access" for entry in logged)  # no --access-log


def test_plain_log_lines_have_millisecond_utc_times() -> None:
    with serving("--adapter", "rest", "--port", "rest=0") as (proc, said, _):
        _, err = stop(proc)
    assert said == [said[0], said[1]] and said[1].startswith("roomchat: rest listening on http://")
    budget = next(line for line in err.splitlines() if "open-file limit" in line)
    assert MS_UTC.match(budget.split(" ")[0]), budget


def test_access_log_has_method_path_status_bytes_duration_and_no_token() -> None:
    with serving("--adapter", "rest", "--port", "rest=0", "--log-json", "--access-log",
                 "--log-level", "warning") as (proc, _, urls):  # fmt: skip
        base = urls["rest"]
        with httpx.Client(timeout=5) as client:
            page = client.get(f"{base}/api/room/lobby/messages?limit=5&access_token={TOKEN}")
            posted = client.post(f"{base}/api/room/lobby", json={"userId": "ann", "text": "hi"},
                                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            missing = client.get(f"{base}/nowhere")
        _, err = stop(proc)
    assert TOKEN not in err and TOKEN.split(".")[2] not in err
    access = [entry for entry in as_json(err.splitlines()) if entry["logger"] == "roomchat.access"]
    assert [(e["method"], e["path"], e["status"], e["bytes"]) for e in access] == [
        ("GET", "/api/room/lobby/messages?limit=5&access_token=[redacted]", 200, len(page.content)),
        ("POST", "/api/room/lobby", 201, len(posted.content)),
        ("GET", "/nowhere", 404, len(missing.content)),
    ]
    assert all(0 <= entry["duration_ms"] < 5000 and entry["client"] == "127.0.0.1" for entry in access)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def test_under_workers_the_start_up_lines_are_said_once_by_the_supervisor(redis: RedisServer) -> None:
    args = ["--adapter", "rest", "--port", "rest=0", "--backend", redis.url, "--workers", "2", "--log-json"]
    with serving(*args) as (proc, said, urls):
        workers = psutil.Process(proc.pid).children()
        assert len(workers) == 2
        workers[1].kill()  # restarted by the supervisor: it must say nothing more at start-up
        deadline = time.monotonic() + 15
        port = int(urls["rest"].rsplit(":", 1)[1])
        while not _listening(_worker_pids(proc) - {w.pid for w in workers}, port):
            assert time.monotonic() < deadline, "the worker was not restarted"
            time.sleep(0.05)
        httpx.get(f"{urls['rest']}/healthz", timeout=5).raise_for_status()
        out, err = stop(proc)
    stdout = as_json(said + out.splitlines())
    assert [entry["message"] for entry in stdout] == [
        "serving rest (chosen with --adapter)",
        f"rest listening on {urls['rest']}",
    ]
    logged = as_json(err.splitlines())
    assert sum("open-file limit" in entry["message"] for entry in logged) == 1
    assert any("restarted" in entry["message"] for entry in logged)


def _listening(pids: set[int], port: int) -> bool:
    """Whether one of `pids` listens on `port`: a restarted worker is up."""
    for pid in pids:
        connections = psutil.Process(pid).net_connections("tcp")
        if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in connections):
            return True
    return False


def _worker_pids(proc: subprocess.Popen[str]) -> set[int]:
    return {child.pid for child in psutil.Process(proc.pid).children()}
