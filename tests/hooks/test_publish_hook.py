"""`--publish-hook`: every post on every transport asks the app's backend first
(contract: Publish hook), against a receiver the test runs on 127.0.0.1."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.hooks import SIGNATURE_HEADER, verify
from tests.adapters.grpc.client import room_stub
from tests.hooks.receiver import Receiver, allow, hang, receiver, refuse, serving, status
from tests.support import Log, Process, roomchat_process
from tests.ws_client import ws_connect

SECRET = "the-app-and-roomchat-share-this"
DOCS = Path(__file__).parent.parent.parent / "docs"
TIMEOUT = 2.0  # the default: long enough for a loaded machine


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver(allow()) as running:
        yield running


def _serve(hook: Receiver, *extra: str) -> object:
    return roomchat_process(
        "--adapter", "rest,grpc,html", "--port", "rest=0,grpc=0,html=0",
        "--publish-hook", hook.url, "--webhook-secret", SECRET,
        "--publish-hook-timeout", str(TIMEOUT), *extra,
        expect=3,
    )  # fmt: skip


async def _texts(server: Process, room: str) -> list[str]:
    async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
        answer = await client.get(f"/api/room/{room}/messages")
    return [m["text"] for m in answer.json()["messages"]]


async def test_an_allowed_post_is_stored_and_the_hook_was_asked_signed(hook: Receiver) -> None:
    with _serve(hook) as server:  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
            posted = await client.post("/api/room/lobby", json={"userId": "ann", "text": "hello"})
        assert posted.status_code == 201, posted.text
        assert await _texts(server, "lobby") == ["hello"]
    [asked] = hook.received
    assert asked.json() == {"roomId": "lobby", "userId": "ann", "text": "hello"}
    assert verify(SECRET, asked.body, asked.headers[SIGNATURE_HEADER.lower()])
    assert not verify("another-secret", asked.body, asked.headers[SIGNATURE_HEADER.lower()])


async def test_the_hook_rewrites_the_text_on_every_transport(hook: Receiver) -> None:
    hook.answer = allow("[link removed]")
    with _serve(hook) as server:  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
            rest = await client.post("/api/room/r", json={"userId": "ann", "text": "http://spam"})
            html = await client.post(
                server.urls["html"] + "/room/r", json={"userId": "ann", "text": "http://spam"}
            )
        async with ws_connect(server.urls["rest"], subprotocols=["roomchat.v1"]) as ws:
            ack = await ws.ask(type="publish", roomId="r", userId="ann", text="http://spam", ref="1")
        async with room_stub(server.urls["grpc"]) as stub:
            grpc_answer = await stub.PostToRoom(pb.Message(roomId="r", userId="ann", text="http://spam"))
        assert rest.json()["message"]["text"] == "[link removed]"
        assert html.json()["message"]["text"] == "[link removed]"
        assert ack["type"] == "ack" and ack["message"]["text"] == "[link removed]"
        assert json.loads(grpc_answer.data)["text"] == "[link removed]"
        assert await _texts(server, "r") == ["[link removed]"] * 4


async def test_a_rewrite_that_breaks_the_rules_is_refused_as_a_post_would_be(hook: Receiver) -> None:
    hook.answer = allow("   ")
    with _serve(hook) as server:  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
            answer = await client.post("/api/room/r", json={"userId": "ann", "text": "hi"})
        assert answer.status_code == 422
        assert await _texts(server, "r") == []


async def test_a_refusal_is_403_with_the_reason_on_every_transport_and_nothing_is_stored(
    hook: Receiver,
) -> None:
    hook.answer = refuse("no shouting")
    with _serve(hook) as server:  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
            rest = await client.post("/api/room/r", json={"userId": "ann", "text": "HEY"})
            html = await client.post(server.urls["html"] + "/room/r", data={"user": "ann", "message": "HEY"})
        async with ws_connect(server.urls["rest"], subprotocols=["roomchat.v1"]) as ws:
            error = await ws.ask(type="publish", roomId="r", userId="ann", text="HEY", ref="7")
        async with room_stub(server.urls["grpc"]) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.PostToRoom(pb.Message(roomId="r", userId="ann", text="HEY"))
        assert (rest.status_code, rest.json()["message"]) == (403, "no shouting"), rest.text
        assert html.status_code == 403 and "no shouting" in html.text
        assert error == {"type": "error", "ref": "7", "roomId": "r", "code": 403, "message": "no shouting"}
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert refused.value.details() == "no shouting"
        assert await _texts(server, "r") == []


@pytest.mark.parametrize("answer", [hang(TIMEOUT + 3), status(500)], ids=["hangs", "answers-500"])
async def test_no_valid_answer_in_time_is_503_and_nothing_is_stored(hook: Receiver, answer: object) -> None:
    hook.answer = answer  # type: ignore[assignment]
    with _serve(hook) as server:  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
            started = time.monotonic()
            rest = await client.post("/api/room/r", json={"userId": "ann", "text": "hi"})
            took = time.monotonic() - started
        async with ws_connect(server.urls["rest"], subprotocols=["roomchat.v1"]) as ws:
            error = await ws.ask(type="publish", roomId="r", userId="ann", text="hi", ref="1")
        async with room_stub(server.urls["grpc"]) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.PostToRoom(pb.Message(roomId="r", userId="ann", text="hi"))
        assert rest.status_code == 503, rest.text
        assert "publish hook" in rest.json()["message"]
        assert took < TIMEOUT + 1.0  # the hook's timeout, not the client's
        assert (error["type"], error["code"]) == ("error", 503)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await _texts(server, "r") == []


async def test_fail_open_stores_the_post_when_the_hook_does_not_answer(hook: Receiver) -> None:
    hook.answer = hang(TIMEOUT + 3)
    with _serve(hook, "--publish-hook-fail-open") as server:  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
            posted = await client.post("/api/room/r", json={"userId": "ann", "text": "hi"})
        assert posted.status_code == 201, posted.text
        assert await _texts(server, "r") == ["hi"]


def test_a_publish_hook_without_a_secret_is_one_error_line() -> None:
    from tests.cli.test_serve import _one_line_error, run_cli

    _one_line_error(run_cli("serve", "--publish-hook", "http://127.0.0.1:1/hook"), "--webhook-secret")


async def test_the_receiver_in_the_docs_works_as_written(tmp_path: Path) -> None:
    source = re.search(r"```python\n(.*?)```", (DOCS / "publish-hook.md").read_text(), re.S)
    assert source is not None
    namespace: dict[str, object] = {}
    exec(compile(source.group(1), "docs/publish-hook.md", "exec"), namespace)  # the page's code, as written
    async with serving(namespace["app"]) as base:
        with roomchat_process(
            "--adapter", "rest", "--port", "rest=0",
            "--publish-hook", f"{base}/hook", "--webhook-secret", "change-me",
        ) as server:  # fmt: skip
            async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
                refused = await client.post("/api/room/r", json={"userId": "ann", "text": "a BADWORD"})
                rewritten = await client.post("/api/room/r", json={"userId": "ann", "text": "see http://x.example"})
        with roomchat_process(
            "--adapter", "rest", "--port", "rest=0",
            "--publish-hook", f"{base}/hook", "--webhook-secret", "not-the-one",
        ) as server:  # fmt: skip
            async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
                unsigned = await client.post("/api/room/r", json={"userId": "ann", "text": "hi"})
    assert (refused.status_code, refused.json()["message"]) == (403, "mind your language")
    assert rewritten.json()["message"]["text"] == "see hxxp://x.example"
    assert unsigned.status_code == 503  # the receiver refused a request signed with another secret


async def test_sighup_points_posts_at_a_new_hook_without_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "roomchat.toml"
    async with receiver(refuse("old hook")) as old, receiver(allow("new hook")) as new:
        settings = f'[serve]\nadapter = ["rest"]\nport = ["rest=0"]\nwebhook-secret = "{SECRET}"\n'
        settings += "publish-hook-timeout = 10\n"  # a loaded machine must not turn a refusal into a 503
        config.write_text(settings + f'publish-hook = "{old.url}"\n')
        with roomchat_process("--config", str(config)) as server:
            async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
                before = await client.post("/api/room/r", json={"userId": "ann", "text": "hi"})
                config.write_text(settings + f'publish-hook = "{new.url}"\n')
                server.proc.send_signal(signal.SIGHUP)
                Log(server).wait_for("reloaded", "--publish-hook")
                after = await client.post("/api/room/r", json={"userId": "ann", "text": "hi"})
    assert (before.status_code, before.json()["message"]) == (403, "old hook")
    assert after.status_code == 201 and after.json()["message"]["text"] == "new hook"
