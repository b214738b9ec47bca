"""docs/security.md's worked `--auth jwt` set-up runs as written (on the port the server really got)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import roomchat_process

DOC = (Path(__file__).parent.parent / "docs" / "security.md").read_text()
ID = re.compile(r"\d{13}-\d+")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MARK = "=== next command ==="


def _normalise(text: str) -> str:
    return TIME.sub("<time>", ID.sub("<id>", text)).strip()


@pytest.mark.skipif(subprocess.run(["which", "curl"], capture_output=True).returncode, reason="no curl")
def test_the_worked_jwt_set_up() -> None:
    block = re.search(r"### A worked set-up\n\n```console\n(.*?)```", DOC, re.S)
    assert block is not None
    steps: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    key = secrets.token_urlsafe(32)
    serve, _ = next(step for step in steps if step[0].startswith("roomchat serve"))
    flags = serve.removeprefix("roomchat serve").removesuffix("&").split()
    env = {"ROOMCHAT_JWT_KEY": key}
    with roomchat_process("--adapter", "rest", "--port", "rest=0", *flags, env=env) as server:
        address = server.urls["rest"].removeprefix("http://")
        script = [f"export ROOMCHAT_JWT_KEY={key}"]
        checked = []
        for command, shown in steps:
            if command.startswith(("export ", "roomchat serve", "curl -N")):
                continue  # the key and the server are the test's; a stream never ends by itself
            script += [f"echo '{MARK}'", command.replace("localhost:8080", address)]
            checked.append((command, shown))
        path = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
        ran = subprocess.run(
            ["bash", "-c", "\n".join(script)], capture_output=True, text=True, env=path, timeout=60
        )
        assert ran.returncode == 0, ran.stderr
        outputs = ran.stdout.split(MARK + "\n")[1:]
        assert len(outputs) == len(checked)
        for (command, shown), output in zip(checked, outputs, strict=True):
            assert _normalise(output) == _normalise("\n".join(shown)), command
        server.terminate()
