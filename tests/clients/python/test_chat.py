"""roomchat-chat headless, with Textual's own driver (`run_test` and its `Pilot`), on a real server."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from roomchat_client import Client
from roomchat_client.chat import main
from roomchat_client.chat.app import ChatApp
from textual.pilot import Pilot
from textual.widgets import RichLog, Static

from tests.clients.python.support import Server, sqlite_server, until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with sqlite_server(tmp_path) as running:
        yield running


def shown(app: ChatApp) -> str:
    """Every line of the message pane, as the screen shows it."""
    return "\n".join(line.text for line in app.query_one(RichLog).lines)


def status(app: ChatApp) -> str:
    return str(app.query_one("#status", Static).render())


def post(server: Server, text: str, user: str = "bob") -> None:
    r = httpx.post(f"{server.url}/api/room/lobby", json={"userId": user, "text": text})
    assert r.status_code == 201, r.text


async def stored(server: Server) -> list[tuple[str, str]]:
    async with httpx.AsyncClient() as http:
        page = (await http.get(f"{server.url}/api/room/lobby/messages")).json()["messages"]
    return [(m["userId"], m["text"]) for m in page]


async def typed(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


async def test_history_live_messages_names_times_and_what_is_typed(server: Server) -> None:
    post(server, "from before")
    app = ChatApp("lobby", server.url, "ann")
    async with app.run_test(size=(100, 24)) as pilot:
        await until(lambda: "connected" in status(app) and "bob: from before" in shown(app), 10, "history")
        post(server, "live")
        await until(lambda: "bob: live" in shown(app), 5, "a live message")
        await typed(pilot, "hi bob")
        await until(lambda: "ann: hi bob" in shown(app), 5, "my own message, once stored")
        assert await stored(server) == [("bob", "from before"), ("bob", "live"), ("ann", "hi bob")]
        first = shown(app).splitlines()[0]
        assert first[2] == ":" and first[5] == ":" and first.endswith("bob: from before")  # HH:MM:SS
        await typed(pilot, "/quit")
        await until(lambda: not app.is_running, 5, "/quit leaves")
    assert app.return_code in (0, None)


async def test_who_is_here(server: Server) -> None:
    app = ChatApp("lobby", server.url, "ann")
    async with app.run_test(size=(100, 24)):
        people = app.query_one("#people", Static)
        await until(lambda: "ann" in str(people.render()), 10, "ann is here")
        async with Client(server.url, user_id="bob") as bob:
            await bob.subscribe("lobby")
            await until(lambda: "bob" in str(people.render()), 5, "bob arrived")
        await until(lambda: "bob" not in str(people.render()), 5, "bob left")
        assert "here (1)" in str(people.render())


async def test_says_reconnecting_and_resumes_what_was_missed(server: Server) -> None:
    app = ChatApp("lobby", server.url, "ann")
    async with app.run_test(size=(100, 24)):
        await until(lambda: status(app).endswith("connected"), 10, "connected")
        post(server, "one")
        await until(lambda: "bob: one" in shown(app), 5, "the first message")
        server.stop(signal.SIGKILL)
        await until(lambda: status(app).endswith("reconnecting"), 5, "reconnecting, in words")
        server.start()
        post(server, "two")  # before the app is back
        await until(lambda: status(app).endswith(": connected"), 30, "connected again")
        await until(lambda: "bob: two" in shown(app), 5, "the message posted while away")
        assert shown(app).count("bob: one") == 1


async def test_ctrl_c_quits() -> None:
    app = ChatApp("lobby", "http://127.0.0.1:9", "ann")  # nothing listens there: still quits
    async with app.run_test() as pilot:
        assert status(app).endswith("disconnected")
        await pilot.press("ctrl+c")
        await until(lambda: not app.is_running, 5, "Ctrl-C quits")


def test_the_command_needs_a_room(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main([])
    assert usage.value.code == 2 and "room" in capsys.readouterr().err
