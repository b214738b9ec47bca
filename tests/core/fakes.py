"""Fakes for the core's unit tests: a backend whose timing the test controls."""

from __future__ import annotations

import asyncio

from roomchat.backends.memory import MemoryBackend
from roomchat.core import BackendUnavailable, Message
from roomchat.core.ports import BackendSettings, BackendSink, Posted, Replay


class FakeBackend(MemoryBackend):
    """The memory backend, with the test in charge of when things happen.

    - `hold_delivery`: published messages are stored at once but reach the
      sink only on `deliver()`, like a Redis reader that is behind.
    - `replay_gate`: replay waits for this event, like a slow history read;
      `stale_replay` says whether the answer was read before the wait.
    - `down`: every call raises BackendUnavailable.
    """

    def __init__(self, history: int = 100) -> None:
        super().__init__("memory", BackendSettings(history=history))
        self.hold_delivery = False
        self.replay_gate: asyncio.Event | None = None
        self.replay_started = asyncio.Event()
        self.stale_replay = True  # the gate holds the answer (True) or the read itself
        self.down = False
        self.held: list[Message] = []
        self.subscriptions: list[str] = []
        self.unsubscriptions: list[str] = []
        self._real_sink: BackendSink | None = None

    async def start(self, sink: BackendSink) -> None:
        self._real_sink = sink
        await super().start(self._Tap(self))

    class _Tap:
        def __init__(self, fake: FakeBackend) -> None:
            self.fake = fake

        def message(self, message: Message) -> None:
            if self.fake.hold_delivery:
                self.fake.held.append(message)
            else:
                assert self.fake._real_sink is not None
                self.fake._real_sink.message(message)

        def deleted(self, room_id: str) -> None:
            assert self.fake._real_sink is not None
            self.fake._real_sink.deleted(room_id)

        def interrupted(self, room_id: str) -> None:
            assert self.fake._real_sink is not None
            self.fake._real_sink.interrupted(room_id)

    def deliver(self) -> None:
        held, self.held = self.held, []
        assert self._real_sink is not None
        for message in held:
            self._real_sink.message(message)

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        if self.down:
            raise BackendUnavailable("fake backend is down")
        return await super().publish(room_id, user_id, text)

    async def publish_once(self, room_id: str, user_id: str, text: str, key: str) -> Posted:
        if self.down:  # the memory backend's publish_once does not go through `publish`
            raise BackendUnavailable("fake backend is down")
        return await super().publish_once(room_id, user_id, text, key)

    async def replay(self, room_id: str, after: str) -> Replay:
        self.replay_started.set()
        if self.replay_gate is not None and not self.stale_replay:
            await self.replay_gate.wait()
        answer = await super().replay(room_id, after)
        if self.replay_gate is not None and self.stale_replay:
            await self.replay_gate.wait()
        return answer

    async def subscribe(self, room_id: str) -> None:
        if self.down:
            raise BackendUnavailable("fake backend is down")
        self.subscriptions.append(room_id)
        await super().subscribe(room_id)

    def unsubscribe(self, room_id: str) -> None:
        self.unsubscriptions.append(room_id)
        super().unsubscribe(room_id)

    async def ping(self) -> bool:
        return not self.down
