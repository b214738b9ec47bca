"""Abusive streams (issue 24, items 2 and 3), from the attacker's side over real sockets.

A server (a subprocess, so its RSS is its own) holds a 5 MB history. Resumers
of all of it that never read, on SSE, WebSocket and gRPC, and WebSocket ping
flooders that never read their pongs, must cost the server little and must not
stall it: meanwhile a second client's `/healthz` and its post's delivery on a
live stream are answered within 200 ms (see `SecondClient.check`). After the attackers hang up, their
memory is the server's again. Ordinary resumers still get every message once,
in order, with live messages posted during the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import psutil
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.adapters.http.ws_protocol import CLOSE_POLICY, MAX_PINGS
from tests.adapters.grpc.client import read, room_stub
from tests.limits.attackers import (
    BIG_TEXT,
    JSON_PING,
    PING,
    flood,
    grpc_resumer,
    port_of,
    sse_resumer,
    ws_open,
    ws_resumer,
)
from tests.support import SSE, roomchat_process, stream
from tests.ws_client import ws_connect

ROOM = "big"
HISTORY = 300  # messages of 16 KiB: 5 MB of history
HISTORY_BYTES = HISTORY * len(BIG_TEXT.encode())
ATTACKERS = 10
ANSWERED_WITHIN = 0.2  # seconds, for the second client
MiB = 2**20

pytestmark = pytest.mark.slow


@dataclass
class Server:
    base: str
    grpc: str
    first: str  # the id of history's first message: resuming after it replays the rest
    process: psutil.Process

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    async def listeners(self) -> int:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            return int((await client.get(f"/api/room/{ROOM}")).json()["listeners"])


@contextlib.asynccontextmanager
async def history_server() -> AsyncIterator[Server]:
    args = ["--adapter", "rest", "--adapter", "grpc", "--port", "rest=0", "--port", "grpc=0"]
    # Room in history for the live posts of the last test: history's first message stays.
    with roomchat_process(*args, "--history", str(HISTORY + 100), expect=2) as running:
        base = running.urls["rest"]
        body = json.dumps({"userId": "filler", "text": BIG_TEXT}, ensure_ascii=False).encode()
        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            posted = [
                await client.post(f"/api/room/{ROOM}", content=body, headers=headers) for _ in range(HISTORY)
            ]
        ids = [answer.json()["message"]["id"] for answer in posted]
        yield Server(base, running.urls["grpc"], ids[0], psutil.Process(running.proc.pid))


@dataclass
class SecondClient:
    """Asks /healthz every 20 ms, and posts to a quiet room every 100 ms that its stream delivers."""

    server: Server
    answers: list[float] = field(default_factory=list)
    deliveries: list[float] = field(default_factory=list)
    rss_before: int = 0
    peak_rss: int = 0

    async def run(self, seconds: float) -> None:
        base = self.server.base
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as client,
            stream(client, f"{base}/api/stream/calm") as events,
        ):
            assert (await events.comment()) == "connected"
            await asyncio.gather(self._probe(client, seconds), self._post(client, events, seconds))

    async def _probe(self, client: httpx.AsyncClient, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent = time.monotonic()
            assert (await client.get("/healthz")).status_code == 200
            self.answers.append(time.monotonic() - sent)
            self.peak_rss = max(self.peak_rss, self.server.rss())
            await asyncio.sleep(max(0.0, 0.02 - (time.monotonic() - sent)))

    async def _post(self, client: httpx.AsyncClient, events: SSE, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            sent = time.monotonic()
            r = await client.post("/api/room/calm", json={"userId": "calm", "text": "hi"})
            assert r.status_code == 201
            event = await events.next(10)
            assert event is not None and event.json()["id"] == r.json()["message"]["id"]
            self.deliveries.append(time.monotonic() - sent)
            await asyncio.sleep(0.1)

    def check(self, calm: SecondClient) -> None:
        """Answered and delivered within 200 ms, or on a loaded shared machine within twice the
        worst the same client saw just before the attack (`calm`), but for one in 50, and none
        past five times that; before the fixes the worst were 1 to 24 s."""
        bound = max(ANSWERED_WITHIN, 2 * max(calm.answers + calm.deliveries))
        print(
            f"second client: {len(self.answers)} answers, worst {max(self.answers) * 1000:.0f} ms;"
            f" {len(self.deliveries)} deliveries, worst {max(self.deliveries) * 1000:.0f} ms;"
            f" bound {bound * 1000:.0f} ms"
        )
        for took in (self.answers, self.deliveries):
            assert len([t for t in took if t >= bound]) <= len(took) // 50, took
            assert max(took) < 5 * bound, took


@contextlib.asynccontextmanager
async def second_client(server: Server) -> AsyncIterator[tuple[SecondClient, SecondClient]]:
    """The second client for a second and a half before the attack (the machine's own noise),
    then for 4 s from the start of the attack in the body; both, once it has run."""
    calm = SecondClient(server)
    await calm.run(1.5)
    second = SecondClient(server)
    second.rss_before = server.rss()
    probing = asyncio.ensure_future(second.run(4.0))
    yield calm, second
    await probing


Opener = Callable[[Server], socket.socket]
RESUMERS: dict[str, Opener] = {
    "sse": lambda s: sse_resumer(s.base, ROOM, s.first),
    "ws": lambda s: ws_resumer(s.base, ROOM, s.first),
    "grpc": lambda s: grpc_resumer(port_of(s.grpc), ROOM, s.first),
}


@pytest.mark.parametrize("transport", list(RESUMERS))
async def test_resumers_that_never_read_cost_little_stall_nobody_and_give_their_memory_back(
    transport: str,
) -> None:
    async with history_server() as server:
        attack = RESUMERS[transport]
        async with second_client(server) as (calm, second):
            for _ in range(2):  # two rounds: what the first left behind would add up
                socks = await asyncio.to_thread(lambda: [attack(server) for _ in range(ATTACKERS)])
                await asyncio.sleep(1.5)
                for sock in socks:
                    sock.close()
                await asyncio.sleep(0.3)
        before = second.rss_before
        for _ in range(100):  # the server notices the hang-ups
            if await server.listeners() == 0:
                break
            await asyncio.sleep(0.05)
        after = server.rss()
        grown, kept = second.peak_rss - before, after - before
        print(f"{transport}: RSS {before // MiB} MiB, peak +{grown / MiB:.1f}, after close +{kept / MiB:.1f}")
        second.check(calm)
        assert await server.listeners() == 0
        # The encodings of history's messages are built once and kept with them (about a
        # history's worth; gRPC keeps the protobuf and its frame: two); each resumer costs at
        # most a piece and its socket's buffer, not a history.
        encodings = (2 if transport == "grpc" else 1) * HISTORY_BYTES
        assert grown < encodings + ATTACKERS * MiB
        assert kept < encodings + ATTACKERS * MiB  # (what the allocator keeps of freed pieces)


@pytest.mark.parametrize(("name", "frame", "frames"), [("ping", PING, None), ("json", JSON_PING, 200_000)])
async def test_a_ping_flood_that_never_reads_stalls_nobody_and_is_not_buffered(
    name: str, frame: bytes, frames: int | None
) -> None:
    async with history_server() as server:
        async with second_client(server) as (calm, second):
            sock = await asyncio.to_thread(ws_open, server.base)
            sent = await asyncio.to_thread(flood, sock, frame, 3.5, frames)
        before = second.rss_before
        grown = second.peak_rss - before
        print(f"{name} flood: {sent} frames sent; RSS {before // MiB} MiB, peak +{grown / MiB:.1f}")
        sock.close()
        second.check(calm)
        assert grown < 16 * MiB


async def test_a_client_that_pings_past_the_bound_is_closed_with_1008() -> None:
    async with history_server() as server:
        async with ws_connect(server.base) as ws:
            for i in range(MAX_PINGS + 1):
                await ws.connection.ping(str(i))
            await asyncio.wait_for(ws.connection.wait_closed(), 5)
            assert ws.connection.close_code == CLOSE_POLICY
            assert ws.connection.close_reason == "too many pings"
        async with ws_connect(server.base) as ws:  # fewer are answered, and the connection stays
            for i in range(MAX_PINGS // 2):
                await asyncio.wait_for(await ws.connection.ping(str(i)), 5)
            assert await ws.ask(type="ping") == {"type": "pong"}


async def test_ordinary_resumers_get_every_message_once_in_order_across_the_replay() -> None:
    async with history_server() as server, httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        page = await client.get(f"/api/room/{ROOM}/messages", params={"limit": HISTORY})
        expected = [m["id"] for m in page.json()["messages"][1:]]
        live: list[str] = []

        async def post_live() -> None:  # posted while the replays are under way
            for i in range(20):
                r = await client.post(f"/api/room/{ROOM}", json={"userId": "live", "text": f"live {i}"})
                live.append(r.json()["message"]["id"])

        async def by_sse() -> list[str]:
            url = f"{server.base}/api/stream/{ROOM}?lastEventId={server.first}"
            async with stream(client, url) as events:
                return [e.id or "" for e in await events.messages(len(expected) + 20, timeout=20)]

        async def by_ws() -> list[str]:
            async with ws_connect(server.base, max_size=2**20) as ws:
                await ws.subscribe(ROOM, lastId=server.first)
                return [m["id"] for m in await ws.messages(len(expected) + 20, timeout=20)]

        async def by_grpc() -> list[str]:
            async with room_stub(server.grpc) as stub:
                call = stub.StreamRoom(pb.RoomRequest(roomId=ROOM, lastId=server.first))
                got = [m.id for m in await read(call, len(expected) + 20, timeout=20)]
                call.cancel()
                return got

        results = await asyncio.gather(by_sse(), by_ws(), by_grpc(), post_live())
        for got in results[:3]:
            assert got == expected + live
