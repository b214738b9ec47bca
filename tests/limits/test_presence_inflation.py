"""Presence inflation (issue 24, item 6): one client making up thousands of names.

Under --auth none a listener names itself, so one client with a few gRPC
connections once put 10,000 names in a room; each `GET .../presence` was then
781 KiB and stalled the loop 186-264 ms. Now an IP holds at most
--max-names-per-ip names (default 100), and whatever a room holds, a presence
answer is one page and a presence event lists at most 100 joins and 100 leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.adapters.grpc.generated import message_pb2_grpc as pb_grpc
from roomchat.bootstrap import ServiceSettings
from roomchat.core.limits import DEFAULT_MAX_NAMES_PER_IP, Limits
from roomchat.core.presence import NOTE_USERS
from tests.adapters.grpc.client import target
from tests.limits.clients import client_from
from tests.limits.probe import BOUND, probing
from tests.support import serve, stream


@contextlib.asynccontextmanager
async def named_streams(url: str, room: str, names: list[str], channels: int) -> AsyncIterator[list[Any]]:
    """A StreamRoom call per name, spread over `channels` connections; each call once it has
    either started (its headers came) or failed."""
    own = [("grpc.use_local_subchannel_pool", 1)]  # else grpc shares one connection between the channels
    opened = [grpc.aio.insecure_channel(target(url), options=own) for _ in range(channels)]
    stubs = [pb_grpc.RoomStub(channel) for channel in opened]
    calls = [
        stubs[i % channels].StreamRoom(pb.RoomRequest(roomId=room, userId=name))
        for i, name in enumerate(names)
    ]
    try:
        await asyncio.gather(*(call.wait_for_connection() for call in calls), return_exceptions=True)
        yield calls
    finally:
        for call in calls:
            call.cancel()
        await asyncio.gather(*(channel.close() for channel in opened))


async def refused(call: Any) -> grpc.StatusCode | None:
    """The status a call ended with at once, or None while it is open."""
    try:
        await asyncio.wait_for(asyncio.shield(call.read()), 0.05)
    except TimeoutError:
        return None
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return None


async def test_one_ip_holds_at_most_max_names_per_ip_names_by_default(client: httpx.AsyncClient) -> None:
    extra = 20
    async with serve("rest", "grpc") as server:
        names = [f"made-up-{i:04}" for i in range(DEFAULT_MAX_NAMES_PER_IP + extra)]
        async with named_streams(server.url("grpc"), "r", names, channels=4) as calls:
            codes = await asyncio.gather(*(refused(call) for call in calls))
            assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == extra, codes
            assert codes.count(None) == DEFAULT_MAX_NAMES_PER_IP
            # A name it already holds (another tab of the same user) is still welcome...
            async with named_streams(server.url("grpc"), "r", [names[codes.index(None)]], channels=1) as (
                again,
            ):
                assert await refused(again) is None
            # ...and another client's name too.
            async with (
                client_from("127.0.0.2", server.url()) as other,
                stream(other, f"{server.url()}/api/stream/r?userId=bob"),
            ):
                found = (await client.get(f"{server.url()}/api/room/r/presence?limit=1000")).json()
            assert len(found["users"]) == DEFAULT_MAX_NAMES_PER_IP + 1
            refusal = await client.get(f"{server.url()}/api/stream/r?userId=one-too-many")
            assert refusal.status_code == 429 and "names" in refusal.json()["message"]
        assert await server.listeners_become("r", 0)
        # Gone names are given back: the IP may name new listeners again.
        async with named_streams(server.url("grpc"), "r", ["later"], channels=1) as (later,):
            assert await refused(later) is None


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_a_room_of_thousands_of_names_answers_in_pages_and_bounded_events(
    client: httpx.AsyncClient,
) -> None:
    count = 2000
    settings = ServiceSettings(limits=Limits(max_names_per_ip=0))  # as if from thousands of IPs
    async with serve("rest", "grpc", service_settings=settings) as server:
        base = server.url()
        async with stream(client, f"{base}/api/stream/r?presence=1") as watcher:
            assert await watcher.comment() == "connected"
            names = [f"u{i:05}" for i in range(count)]
            async with named_streams(server.url("grpc"), "r", names, channels=10):
                assert await server.listeners_become("r", count + 1, within=60)
                # The joins fall into one window or a few; the one with most of them is cut at 100.
                note: dict[str, Any] = {}
                while not note.get("more"):
                    event = await watcher.next(10)
                    assert event is not None and event.event == "presence"
                    note = event.json()
                    assert len(note["joined"]) <= NOTE_USERS
                assert len(note["joined"]) == NOTE_USERS and note["joined"] == sorted(note["joined"])
                async with probing(base) as probe:
                    pages, after, sizes = [], None, []
                    while True:
                        r = await client.get(f"{base}/api/room/r/presence", params={"after": after or ""})
                        sizes.append(len(r.content))
                        page = r.json()
                        pages.append([u["userId"] for u in page["users"]])
                        after = page["next"]
                        if after is None:
                            break
                    async with grpc.aio.insecure_channel(target(server.url("grpc"))) as channel:
                        answer = await pb_grpc.RoomStub(channel).Presence(
                            pb.RoomRequest(roomId="r", lastId="u00099")
                        )
                    by_grpc = json.loads(answer.data)
        assert [name for page in pages for name in page] == names  # every name once, in order
        assert max(sizes) < 16 * 1024, max(sizes)
        assert len(pages) == count // 100
        assert [u["userId"] for u in by_grpc["users"]] == names[100:200] and by_grpc["next"] == "u00199"
        assert probe.worst < BOUND and not probe.failures, (probe.worst, probe.failures)
        worst = probe.worst * 1000
        print(
            f"\n{count} names: {len(pages)} pages of at most {max(sizes)} bytes; worst probe {worst:.0f} ms"
        )
