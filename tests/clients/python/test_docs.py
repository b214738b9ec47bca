"""docs/client-python.md's first program runs as written and prints what the page shows."""

from __future__ import annotations

import ast
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from roomchat_client import Message

from tests.clients.python.support import Server, until

TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

PAGE = (Path(__file__).parents[3] / "docs" / "client-python.md").read_text()
ID = re.compile(r"\d{13}-\d+")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _normalise(text: str) -> str:
    return TIME.sub("<time>", ID.sub("<id>", text))


def test_the_first_program_runs_as_written(tmp_path: Path) -> None:
    program = re.findall(r"```python\n(.*?)```", PAGE, re.S)[0]
    shown = re.findall(r"```console\n\$ python first.py\n(.*?)```", PAGE, re.S)[0]
    (tmp_path / "first.py").write_text(program)
    with Server() as server:
        out = subprocess.run(
            [sys.executable, "first.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "ROOMCHAT_URL": server.url},
        )
    assert out.returncode == 0, out.stderr
    assert _normalise(out.stdout) == _normalise(shown)


async def test_the_readme_lines_run_as_written() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme.split("## Use it from your app", 1)[1]
    lines = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    printed: list[object] = []
    with Server() as server:
        source = lines.replace("http://127.0.0.1:8080", server.url)
        code = compile(source, "README", "exec", flags=TOP_LEVEL_AWAIT)
        running = asyncio.ensure_future(eval(code, {"print": printed.append}))
        async with httpx.AsyncClient(base_url=server.url) as http:
            await until(lambda: len(printed) == 1, 10, "the loop printed the message")
            assert (await http.delete("/api/room/lobby")).status_code == 200  # the loop ends
        await asyncio.wait_for(running, 5)
    assert [(m.user_id, m.text) for m in printed if isinstance(m, Message)] == [("ann", "hello")]
