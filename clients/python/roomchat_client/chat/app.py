"""`roomchat-chat`'s screen: the room's messages, who is here, the connection's state, an input line.

The network lives in one worker (`_network`) that owns the `Client`; it tells
the widgets what happened with messages (`Received`, `StateChanged`,
`PeopleChanged`), so no widget ever awaits the network.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message as UiMessage
from textual.widgets import Input, RichLog, Static

from roomchat_client.backoff import delay
from roomchat_client.client import Client
from roomchat_client.errors import RoomchatError
from roomchat_client.events import Event, Gap, Message, Presence
from roomchat_client.tokens import TokenSource

HISTORY = 50  # messages shown on opening


class Received(UiMessage):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class StateChanged(UiMessage):
    def __init__(self, state: str) -> None:
        super().__init__()
        self.state = state


class PeopleChanged(UiMessage):
    def __init__(self, people: set[str]) -> None:
        super().__init__()
        self.people = people


class ChatApp(App[None]):
    """A chat in one room of a roomchat server."""

    TITLE = "roomchat"
    CSS = """
    #status { height: 1; background: $panel; padding: 0 1; }
    #status.connected { color: $success; }
    #status.down { color: $error; }
    #messages { width: 1fr; border: none; }
    #people { width: 22; border-left: solid $panel; padding: 0 1; }
    Input { dock: bottom; }
    """
    BINDINGS = [Binding("ctrl+c", "quit", "Quit", priority=True, show=False)]

    def __init__(self, room: str, server: str, user: str | None, token: TokenSource = None) -> None:
        super().__init__()
        self.room = room
        self.server = server
        self.user = user
        self.token = token
        self.client: Client | None = None
        self.state = "disconnected"
        self.people: set[str] = set()
        self._dropped = False  # the connection went down since it was last up

    def compose(self) -> ComposeResult:
        yield Static(self._status_text(), id="status", classes="down")
        with Horizontal():
            yield RichLog(id="messages", wrap=True, markup=False)
            yield Static("", id="people")
        yield Input(placeholder=f"Message #{self.room} (Enter sends, /quit leaves)")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self._network()

    # -- the network, in its own worker ---------------------------------------

    @work(exclusive=True, group="network")
    async def _network(self) -> None:
        client = Client(self.server, user_id=self.user, token=self.token, on_state=self._on_state)
        async with client:
            self.client = client
            try:
                last_id = await self._open_history(client)
                subscription = await client.subscribe(self.room, last_id=last_id, presence=True)
                await self._fetch_people()
                async for event in subscription:
                    self.post_message(Received(event))
                self._say(f"the room {self.room} was deleted")
            except RoomchatError as refused:  # a bad room name, a token that does not allow it...
                self._say(f"the server refused: {refused}")

    async def _open_history(self, client: Client) -> str | None:
        """Show the room's recent history (waiting for the server if it is not up yet); its last id."""
        attempt = 0
        while True:
            try:
                history = await client.history(self.room, limit=HISTORY)
                break
            except ConnectionError:
                await asyncio.sleep(delay(attempt))
                attempt += 1
        for message in history:
            self.post_message(Received(message))
        return history[-1].id if history else None

    async def _fetch_people(self) -> None:
        if self.client is not None:
            with contextlib.suppress(ConnectionError, RoomchatError):  # the next reconnect asks again
                self.post_message(PeopleChanged(set(await self.client.presence(self.room))))

    def _on_state(self, up: bool) -> None:
        self.post_message(StateChanged("connected" if up else "reconnecting"))
        if up and self._dropped:  # back after a drop: who came and went meanwhile
            self.run_worker(self._fetch_people(), group="people")
        self._dropped = not up

    @work(group="send")
    async def _send(self, text: str) -> None:
        if self.client is None:
            self._say("not connected yet: try again in a moment")
            return
        try:
            await self.client.publish(self.room, text)
        except (RoomchatError, TimeoutError, ConnectionError) as exc:
            self._say(f"not sent ({exc}): {text}")

    # -- the widgets -------------------------------------------------------------

    @on(Input.Submitted)
    def _submitted(self, submitted: Input.Submitted) -> None:
        text = submitted.value.strip()
        submitted.input.clear()
        if text == "/quit":
            self.exit()
        elif text:
            self._send(text)

    def on_received(self, received: Received) -> None:
        event = received.event
        if isinstance(event, Message):
            when, who = (_clock(event.time), "dim"), (event.user_id, "bold cyan")
            self.query_one(RichLog).write(Text.assemble(when, " ", who, ": ", event.text))
        elif isinstance(event, Gap):
            self._say("some messages are no longer in the room's history (a gap)")
        elif isinstance(event, Presence):
            self.post_message(PeopleChanged((self.people | set(event.joined)) - set(event.left)))

    def on_state_changed(self, changed: StateChanged) -> None:
        self.state = changed.state
        status = self.query_one("#status", Static)
        status.update(self._status_text())
        status.set_class(self.state == "connected", "connected")
        status.set_class(self.state != "connected", "down")

    def on_people_changed(self, changed: PeopleChanged) -> None:
        self.people = changed.people
        names = "\n".join(sorted(self.people))
        self.query_one("#people", Static).update(Text(f"here ({len(self.people)})\n{names}"))

    def _status_text(self) -> Text:
        who = f" as {self.user}" if self.user else ""
        return Text(f"#{self.room} on {self.server}{who}: {self.state}")

    def _say(self, note: str) -> None:
        self.query_one(RichLog).write(Text(f"-- {note}", style="italic dim"))


def _clock(stamp: str) -> str:
    """The message's time as the reader's local HH:MM:SS."""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return stamp
