"""--max-rooms: a post that would add a room past it is 503 "too many rooms"."""

from __future__ import annotations

import grpc
import httpx
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from tests.adapters.grpc.client import room_stub
from tests.support import roomchat_process


async def test_past_max_rooms_a_new_room_is_503_and_a_deleted_one_makes_room() -> None:
    args = ("--adapter", "rest", "--adapter", "grpc", "--port", "rest=0", "--port", "grpc=0")
    with roomchat_process(*args, env={"ROOMCHAT_MAX_ROOMS": "3"}, expect=2) as server:
        base = server.urls["rest"]
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for room in ("a", "b", "c"):
                assert (
                    await client.post(f"/api/room/{room}", json={"userId": "u", "text": "x"})
                ).status_code == 201
            refused = await client.post("/api/room/d", json={"userId": "u", "text": "x"})
            assert refused.status_code == 503
            assert refused.json() == {"code": 503, "message": "too many rooms"}
            assert (await client.get("/api/room/d/messages")).json() == {"messages": []}  # nothing stored
            assert (await client.post("/api/room/a", json={"userId": "u", "text": "y"})).status_code == 201

            async with room_stub(server.urls["grpc"]) as stub:
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await stub.PostToRoom(pb.Message(userId="u", roomId="e", text="x"))
                assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert exc.value.details() == "too many rooms"

            assert (await client.delete("/api/room/a")).status_code == 200
            assert (await client.post("/api/room/d", json={"userId": "u", "text": "x"})).status_code == 201
        assert server.terminate() == 0
