"""StreamRoom: resume, gap, lag, cancel, shutdown and the other transports."""

from __future__ import annotations

import asyncio
import gc
import json

import grpc
import httpx
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.bootstrap import ServiceSettings
from roomchat.core import Listener
from tests.adapters.grpc.client import post, read, room_stub
from tests.limits.attackers import grpc_resumer, port_of
from tests.support import serve, stream


async def test_resuming_with_last_id_has_no_gap_and_no_duplicate() -> None:
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        ids = [await post(stub, "resume", f"m{i}") for i in range(10)]
        call = stub.StreamRoom(pb.RoomRequest(roomId="resume", lastId=ids[3]))
        assert await call.initial_metadata() == ()  # no gap
        later = [await post(stub, "resume", f"m{i}") for i in range(10, 13)]
        got = await read(call, 9)
        assert [m.id for m in got] == ids[4:] + later
        assert [m.text for m in got] == [f"m{i}" for i in range(4, 13)]
        call.cancel()


async def test_an_id_not_in_history_is_announced_as_a_gap_then_all_history() -> None:
    async with (
        serve("grpc", service_settings=ServiceSettings(history=3)) as server,
        room_stub(server.url("grpc")) as stub,
    ):
        ids = [await post(stub, "short", f"m{i}") for i in range(5)]
        call = stub.StreamRoom(pb.RoomRequest(roomId="short", lastId=ids[0]))
        metadata = dict(tuple(await call.initial_metadata()))
        assert json.loads(metadata["roomchat-gap"]) == {"lastEventId": ids[0], "oldestId": ids[2]}
        assert [m.id for m in await read(call, 3)] == ids[2:]
        call.cancel()


async def test_a_cancelled_stream_frees_its_listener() -> None:
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        call = stub.StreamRoom(pb.RoomRequest(roomId="bye"))
        await call.initial_metadata()
        assert server.service.stats().listeners["grpc"] == 1
        call.cancel()
        for _ in range(200):  # the server hears of the cancel over the network
            if server.service.stats().listeners["grpc"] == 0:
                break
            await asyncio.sleep(0.01)
        assert server.service.stats().listeners["grpc"] == 0
        assert json.loads((await stub.GetRoom(pb.RoomRequest(roomId="bye"))).data)["listeners"] == 0


async def test_posted_over_rest_received_over_grpc_and_back_with_the_same_ids() -> None:
    async with serve("rest", "grpc") as server, room_stub(server.url("grpc")) as stub:
        base = server.url("rest")
        call = stub.StreamRoom(pb.RoomRequest(roomId="both"))
        await call.initial_metadata()
        async with httpx.AsyncClient() as client, stream(client, f"{base}/api/stream/both") as sse:
            await sse.comment()
            r = await client.post(f"{base}/api/room/both", json={"userId": "rest-user", "text": "from rest"})
            from_rest = r.json()["message"]
            from_grpc = await post(stub, "both", "from grpc", user="grpc-user")
            got = await read(call, 2)
            assert [(m.id, m.userId, m.text) for m in got] == [
                (from_rest["id"], "rest-user", "from rest"),
                (from_grpc, "grpc-user", "from grpc"),
            ]
            events = await sse.messages(2)
            assert [e.id for e in events] == [from_rest["id"], from_grpc]
            assert events[1].json() == {
                "id": got[1].id,
                "roomId": "both",
                "userId": "grpc-user",
                "text": "from grpc",
                "time": got[1].time,
            }
        call.cancel()


async def test_a_listener_that_stops_reading_gets_resource_exhausted_and_resumes_without_loss() -> None:
    slow_client = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
    async with (
        serve("grpc", service_settings=ServiceSettings(buffer=16)) as server,
        room_stub(server.url("grpc"), slow_client) as slow,
        room_stub(server.url("grpc")) as stub,
    ):
        call = slow.StreamRoom(pb.RoomRequest(roomId="slow"))
        await call.initial_metadata()
        ids: list[str] = []
        while server.service.stats().lagged == 0:  # it reads nothing: windows and buffer fill
            ids.append(await post(stub, "slow", "x" * 4000))
            assert len(ids) < 5000
        got: list[str] = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            while True:
                message = await asyncio.wait_for(call.read(), 5)
                assert message is not grpc.aio.EOF
                got.append(message.id)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert got == ids[: len(got)] and got
        assert f"lastId={got[-1]}" in (caught.value.details() or "")
        assert ("roomchat-last-id", got[-1]) in tuple(caught.value.trailing_metadata())
        again = stub.StreamRoom(pb.RoomRequest(roomId="slow", lastId=got[-1]))
        rest = await read(again, len(ids) - len(got))
        assert got + [m.id for m in rest] == ids
        again.cancel()


async def test_stopping_the_server_ends_streams_with_unavailable_and_the_last_id() -> None:
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        call = stub.StreamRoom(pb.RoomRequest(roomId="stop"))
        await call.initial_metadata()
        sent = await post(stub, "stop", "last words")
        [got] = await read(call, 1)
        server.stopping.set()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call.read(), 5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert got.id == sent and f"lastId={sent}" in (caught.value.details() or "")
        await asyncio.wait_for(server.task, 5)


async def test_streams_cut_by_lost_connections_are_let_go_with_what_they_were_writing() -> None:
    """Issue 24: grpclib kept a lost connection's cancelled rpcs, whose error's traceback held
    their frames (the listener, the replay being written), until ten more connections came."""
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        first = await post(stub, "cut", "x" * 4000)
        for _ in range(100):
            await post(stub, "cut", "y" * 4000)
        port = port_of(server.url("grpc"))
        socks = await asyncio.to_thread(lambda: [grpc_resumer(port, "cut", first) for _ in range(3)])
        assert await server.listeners_become("cut", 3)
        for sock in socks:
            sock.close()
        assert await server.listeners_become("cut", 0)
        await asyncio.sleep(0.1)  # the cancelled rpcs finish
        gc.collect()
        assert [o for o in gc.get_objects() if isinstance(o, Listener)] == []
