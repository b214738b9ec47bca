"""--rate: posts a second per user (per client IP when anonymous), a burst of twice that,
then 429 + Retry-After (gRPC RESOURCE_EXHAUSTED); shared by every process on Redis."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import httpx
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.tokens import mint
from tests.adapters.grpc.client import room_stub
from tests.backends.redis_server import redis_server
from tests.limits.clients import client_from
from tests.support import roomchat_process

RATE = 2  # a burst of 4


async def post_until_refused(client: httpx.AsyncClient, path: str, most: int = 40) -> list[httpx.Response]:
    """Posts as fast as one client can until one is refused (or `most` posts)."""
    answers = []
    for i in range(most):
        answers.append(await client.post(path, json={"userId": "ann", "text": f"m{i}"}))
        if answers[-1].status_code != 201:
            break
    return answers


async def test_past_the_rate_a_post_is_429_with_retry_after_and_passes_after_waiting_it() -> None:
    args = ("--adapter", "rest", "--port", "rest=0")
    with roomchat_process(*args, env={"ROOMCHAT_RATE": str(RATE)}) as server:
        base = server.urls["rest"]
        async with client_from("127.0.0.1", base) as ann, client_from("127.0.0.2", base) as bob:
            answers = await post_until_refused(ann, "/api/room/r")
            refused = answers[-1]
            assert len(answers) >= 2 * RATE + 1  # the burst went through first
            assert refused.status_code == 429
            assert refused.json() == {"code": 429, "message": "too many posts: at most 2 a second"}
            assert refused.headers["retry-after"] == "1"  # whole seconds, rounded up

            other = await bob.post("/api/room/r", json={"userId": "bob", "text": "hi"})
            assert other.status_code == 201  # another client IP has its own bucket

            await asyncio.sleep(int(refused.headers["retry-after"]))  # as the client was told
            again = await ann.post("/api/room/r", json={"userId": "ann", "text": "later"})
            assert again.status_code == 201

            stored = (await ann.get("/api/room/r/messages", params={"limit": 1000})).json()["messages"]
            accepted = [a.json()["message"]["id"] for a in answers if a.status_code == 201]
            assert [m["id"] for m in stored] == [
                *accepted,
                other.json()["message"]["id"],
                again.json()["message"]["id"],
            ]
        assert server.terminate() == 0


async def test_the_rate_holds_on_the_chat_page_form_and_on_grpc() -> None:
    args = ("--adapter", "html", "--adapter", "grpc", "--port", "html=0", "--port", "grpc=0", "--rate", "2")
    with roomchat_process(*args, expect=2) as server:
        async with client_from("127.0.0.1", server.urls["html"]) as page:
            for i in range(40):
                form = await page.post("/room/r", data={"user": "ann", "message": f"m{i}"})
                if form.status_code != 201:
                    break
            assert form.status_code == 429
            assert form.headers["retry-after"] == "1"
            assert form.json()["code"] == 429

        async with room_stub(server.urls["grpc"]) as stub:  # the same client IP: its bucket is empty
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.PostToRoom(pb.Message(userId="ann", roomId="r", text="grpc"))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many posts" in (refused.value.details() or "")
            assert dict(refused.value.trailing_metadata() or ())["retry-after"] == "1"
            await asyncio.sleep(1)
            posted = await stub.PostToRoom(pb.Message(userId="ann", roomId="r", text="grpc"))
            assert json.loads(posted.data)["text"] == "grpc"


async def test_two_processes_on_one_redis_share_the_rate(tmp_path: Path) -> None:
    """A client alternating between two processes gets the rate once, not twice."""
    with redis_server(tmp_path) as redis:
        args = ("--adapter", "rest", "--port", "rest=0", "--backend", redis.url, "--rate", str(RATE))
        with roomchat_process(*args) as one, roomchat_process(*args) as two:
            bases = [one.urls["rest"], two.urls["rest"]]
            async with httpx.AsyncClient(timeout=10) as client:
                codes: dict[str, list[int]] = {base: [] for base in bases}
                started = time.monotonic()
                while time.monotonic() - started < 3:
                    for base in bases:
                        r = await client.post(f"{base}/api/room/shared", json={"userId": "ann", "text": "x"})
                        codes[base].append(r.status_code)
                elapsed = time.monotonic() - started
            accepted = sum(c.count(201) for c in codes.values())
            allowed_once = 2 * RATE + RATE * elapsed  # the burst, then the rate
            assert 2 * RATE <= accepted <= allowed_once + 1, (accepted, elapsed)
            assert all(429 in c for c in codes.values())  # each process refused some
            assert set(codes[bases[0]] + codes[bases[1]]) == {201, 429}


async def test_under_jwt_the_rate_is_per_user_not_per_address() -> None:
    key = "a-test-secret-of-at-least-32-bytes!!"
    args = ("--adapter", "rest", "--port", "rest=0", "--rate", str(RATE), "--auth", "jwt", "--jwt-key", key)
    with roomchat_process(*args) as server:
        base = server.urls["rest"]
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            ann = {"authorization": f"Bearer {mint(key, 'ann')}"}
            bob = {"authorization": f"Bearer {mint(key, 'bob')}"}
            for _ in range(40):
                answer = await client.post("/api/room/r", json={"text": "x"}, headers=ann)
                if answer.status_code != 201:
                    break
            assert answer.status_code == 429
            other = await client.post("/api/room/r", json={"text": "y"}, headers=bob)  # same IP, another user
            assert other.status_code == 201
            assert other.json()["message"]["userId"] == "bob"
