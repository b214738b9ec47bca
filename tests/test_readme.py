"""The README's tour runs as written (with the port the server really got)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.support import roomchat_process

README = (Path(__file__).parent.parent / "README.md").read_text()
ID = re.compile(r"\d{13}-\d+")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _console_blocks() -> list[list[str]]:
    return [block.strip().splitlines() for block in re.findall(r"```console\n(.*?)```", README, re.S)]


def _normalise(text: str) -> str:
    return TIME.sub("<time>", ID.sub("<id>", text))


def _curl(command: str, url: str, timeout: float | None = None) -> str:
    args = shlex.split(command.replace("localhost:8080", url.removeprefix("http://")))
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired as cut:
        out = cut.stdout or b""
        return out.decode() if isinstance(out, bytes) else out


@pytest.mark.skipif(subprocess.run(["which", "curl"], capture_output=True).returncode, reason="no curl")
def test_the_one_minute_tour() -> None:
    (watch, *stream_shown), (post, post_shown) = _console_blocks()[:2]
    assert watch.startswith("$ curl -N") and post.startswith("$ curl -s")
    with roomchat_process("--adapter", "rest", "--port", "rest=0") as server:
        url = server.urls["rest"]
        watcher = subprocess.Popen(
            shlex.split(watch[2:].replace("localhost:8080", url.removeprefix("http://"))),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == ": connected"  # the stream is open
        posted = _curl(post[2:], url, 10)
        assert _normalise(posted.strip()) == _normalise(post_shown)
        seen = [watcher.stdout.readline().rstrip("\n") for _ in range(4)]
        watcher.kill()
        watcher.wait()
        assert [_normalise(line) for line in seen] == [_normalise(line) for line in stream_shown[1:]]
        message = json.loads(posted)["message"]
        assert seen[1] == f"id: {message['id']}"
        _resume_as_shown(url, message["id"])
        server.terminate()


def _resume_as_shown(url: str, real_id: str) -> None:
    """The README's resume: the latest id asked for, then a stream from it; with the
    README's own id (from another server) the stream opens with a gap instead."""
    ask, shown_page, resume, *shown_stream = _console_blocks()[2]
    page = _curl(ask[2:], url, 10).strip()
    assert _normalise(page) == _normalise(shown_page)
    assert json.loads(page)["messages"][0]["id"] == real_id
    printed_id = ID.search(resume)
    assert printed_id is not None
    resumed = _curl(resume[2:].replace(printed_id.group(), real_id), url, 1)
    assert resumed == "\n".join(shown_stream) + "\n\n"  # `: connected`, and nothing posted since
    assert _curl(resume[2:], url, 1).startswith("event: gap\n")
