"""gRPC connections take at most their share of the open-file limit (roomchat.descriptors):
past it a new connection is closed at once (UNAVAILABLE), never left waiting, and HTTP still answers."""

from __future__ import annotations

import asyncio
import contextlib
import json

import grpc
import httpx
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.adapters.grpc.generated import message_pb2_grpc as pb_grpc
from roomchat.descriptors import Budget
from tests.adapters.grpc.client import target
from tests.support import roomchat_process

LIMIT = 256


def channel_of(url: str) -> grpc.aio.Channel:
    """A channel with a connection of its own (channels in one process share them otherwise)."""
    return grpc.aio.insecure_channel(target(url), options=[("grpc.use_local_subchannel_pool", 1)])


async def test_past_the_grpc_share_a_new_connection_is_refused_and_http_still_answers() -> None:
    share = Budget(LIMIT).grpc_connections
    args = ("--adapter", "rest", "--adapter", "grpc", "--port", "rest=0", "--port", "grpc=0")
    with roomchat_process(*args, expect=2, command=("tests.limits.low_nofile", str(LIMIT))) as server:
        async with contextlib.AsyncExitStack() as stack:
            stubs = []
            for _ in range(share):  # a channel of its own (no subchannel sharing): one connection each
                channel = await stack.enter_async_context(channel_of(server.urls["grpc"]))
                stubs.append(pb_grpc.RoomStub(channel))
                await stubs[-1].GetRoom(pb.RoomRequest(roomId="r"), timeout=10)
            extra = await stack.enter_async_context(channel_of(server.urls["grpc"]))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await pb_grpc.RoomStub(extra).GetRoom(pb.RoomRequest(roomId="r"), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            async with httpx.AsyncClient(timeout=10) as client:
                assert (await client.get(f"{server.urls['rest']}/healthz")).status_code == 200
            held = await stubs[0].GetRoom(pb.RoomRequest(roomId="r"), timeout=10)  # the others go on
            assert json.loads(held.data)["roomId"] == "r"

            await stack.aclose()  # once they close, a new connection is served
            async with channel_of(server.urls["grpc"]) as channel:
                for _ in range(100):  # the server hears of the closes over the network
                    try:
                        await pb_grpc.RoomStub(channel).GetRoom(pb.RoomRequest(roomId="r"), timeout=10)
                        break
                    except grpc.aio.AioRpcError:
                        await asyncio.sleep(0.05)
                else:
                    raise AssertionError("no new gRPC connection once the others closed")
