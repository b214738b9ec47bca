"""roomchat-chat for real, in a terminal: tmux types into it and reads its screen."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.clients.python.support import sqlite_server

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
CHAT = Path(sys.executable).with_name("roomchat-chat")
LINE_DISCIPLINE = "echo LD:$(stty -a | grep -o -E -- '(^| )-?(icanon|echo) ' | tr -d ' \\n')"


def _discipline(screen: str) -> str:
    return next(line for line in screen.splitlines() if line.startswith("LD:"))


class Terminal:
    """A tmux session running a plain shell, 100x24."""

    def __init__(self) -> None:
        self.name = f"roomchat-test-{uuid.uuid4().hex[:8]}"
        self._tmux("new-session", "-d", "-s", self.name, "-x", "100", "-y", "24", "bash --norc --noprofile")

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout

    def type(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name)

    def flag(self, name: str) -> str:
        return self._tmux("display-message", "-p", "-t", self.name, f"#{{{name}}}").strip()

    def wait(self, check: Callable[[str], bool], within: float, what: str) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if check(screen := self.screen()):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{what}; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    try:
        yield term
    finally:
        term.close()


def test_in_tmux_a_post_shows_a_typed_line_is_stored_and_ctrl_c_exits_0(
    terminal: Terminal, tmp_path: Path
) -> None:
    with sqlite_server(tmp_path) as server:
        terminal.type(LINE_DISCIPLINE, "Enter")
        before = terminal.wait(lambda s: "LD:" in s.replace("LD:$", ""), 5, "the shell answered")
        terminal.type(f"{CHAT} lobby --server {server.url} --user ann; echo exit=$?", "Enter")
        terminal.wait(lambda s: ": connected" in s, 20, "the chat connected")
        assert terminal.flag("alternate_on") == "1"
        httpx.post(f"{server.url}/api/room/lobby", json={"userId": "bob", "text": "hello from rest"})
        terminal.wait(lambda s: "bob: hello from rest" in s, 5, "the REST post is on screen")
        terminal.type("hello from the terminal", "Enter")
        terminal.wait(lambda s: "ann: hello from the terminal" in s, 5, "the typed line came back")
        page = httpx.get(f"{server.url}/api/room/lobby/messages").json()["messages"]
        assert [(m["userId"], m["text"]) for m in page][-1] == ("ann", "hello from the terminal")
        terminal.type("C-c")
        after = terminal.wait(lambda s: re.search(r"exit=\d", s) is not None, 10, "Ctrl-C ended the chat")
        assert re.findall(r"exit=\d+", after) == ["exit=0"]
        assert terminal.flag("alternate_on") == "0" and terminal.flag("cursor_flag") == "1"
        assert terminal.flag("mouse_any_flag") == "0"
        terminal.type("clear; " + LINE_DISCIPLINE, "Enter")
        restored = terminal.wait(lambda s: "LD:" in s.replace("LD:$", ""), 5, "the shell answered again")
        assert _discipline(restored) == _discipline(before)  # canonical mode and echo as they were
