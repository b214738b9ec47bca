"""The worked example of docs/plugins.md, installed as its own distribution."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import roomchat_process

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "examples" / "roomchat-ndjson"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`pip install` the example into a folder of its own, found through PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    yield str(target)


def test_roomchat_adapters_lists_the_plugin(plugin_path: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "roomchat", "adapters"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": plugin_path},
        check=True,
    )
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["ndjson"] == ["roomchat-ndjson", "0.1.0"]
    assert rows["rest"] == ["roomchat", "0.1.0"]


async def test_serve_starts_the_plugin_beside_a_built_in_one(plugin_path: str) -> None:
    env = {"PYTHONPATH": plugin_path}
    args = ("--adapter", "ndjson", "--adapter", "rest", "--port", "ndjson=0", "--port", "rest=0")
    with roomchat_process(*args, expect=2, env=env) as server:
        host, port = server.urls["ndjson"].removeprefix("tcp://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b'{"room": "lobby"}\n')
        writer.write(b'{"userId": "ann", "text": "over tcp"}\n')
        writer.write(b'{"userId": "ann", "text": ""}\n')
        got = [json.loads(await asyncio.wait_for(reader.readline(), 5)) for _ in range(2)]
        texts = {line.get("text") or line.get("error") for line in got}
        assert texts == {"over tcp", "text must not be empty or only whitespace"}
        history = await asyncio.to_thread(
            subprocess.run,
            ["curl", "-s", f"{server.urls['rest']}/api/room/lobby/messages"],
            capture_output=True,
            text=True,
        )
        assert [m["text"] for m in json.loads(history.stdout)["messages"]] == ["over tcp"]
        started = time.monotonic()
        server.proc.terminate()
        assert json.loads(await asyncio.wait_for(reader.readline(), 5))["event"] == "shutdown"
        assert await asyncio.to_thread(server.proc.wait, 5) == 0
        assert time.monotonic() - started < 5
        writer.close()
