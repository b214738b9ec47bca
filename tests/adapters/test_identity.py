"""`--auth jwt` from the client's side: every claim, every place a token goes,
every way a token is wrong, and a token that expires while its stream is open."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.bootstrap import ServiceSettings
from roomchat.tokens import JwtAuthenticator, mint
from tests.adapters.grpc.client import room_stub
from tests.limits.probe import BOUND, probing
from tests.support import Running, serve, stream

SECRET = "a-test-secret-of-at-least-32-bytes!"


def token(sub: str = "ann", **claims: Any) -> str:
    now = int(time.time())
    body: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"authorization": f"Bearer {value}"}


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    settings = ServiceSettings(auth=JwtAuthenticator(SECRET))
    async with serve("rest", "grpc", service_settings=settings) as running:
        yield running


async def test_without_a_token_every_room_route_is_401_and_the_public_ones_answer(
    server: Running, client: httpx.AsyncClient
) -> None:
    base = server.url()
    for method, path in [
        ("POST", "/api/room/lobby"),
        ("GET", "/api/room/lobby/messages"),
        ("GET", "/api/stream/lobby"),
        ("GET", "/api/room/lobby"),
        ("GET", "/api/rooms"),
        ("DELETE", "/api/room/lobby"),
    ]:
        r = await client.request(method, base + path, json={"text": "hi"} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["code"] == 401
    for path in ("/healthz", "/metrics", "/openapi.json", "/docs"):
        assert (await client.get(base + path)).status_code == 200, path
    assert (await client.get(f"{base}/api/room/lobby/messages", headers=bearer(token()))).json() == {
        "messages": []
    }


@pytest.mark.parametrize(
    "bad",
    [  # made when the test runs: times are relative to now
        pytest.param(lambda: jwt.encode({"sub": "ann"}, "another-secret-of-32-bytes-or-more"), id="key"),
        pytest.param(lambda: jwt.encode({"sub": "ann"}, None, algorithm="none"), id="alg-none"),
        pytest.param(lambda: token(exp=int(time.time()) - 120), id="expired"),
        pytest.param(lambda: token(nbf=int(time.time()) + 120), id="not-yet"),
        pytest.param(lambda: jwt.encode({"exp": int(time.time()) + 60}, SECRET, "HS256"), id="no-sub"),
        pytest.param(lambda: token(sub="\u200b"), id="invisible-sub"),
        pytest.param(lambda: token(rooms=["bad room!"]), id="bad-pattern"),
        pytest.param(lambda: "not.a.token", id="garbage"),
    ],
)
async def test_a_bad_token_is_401_and_stores_nothing(
    server: Running, client: httpx.AsyncClient, bad: Callable[[], str]
) -> None:
    base = server.url()
    r = await client.post(f"{base}/api/room/lobby", json={"text": "forged"}, headers=bearer(bad()))
    assert r.status_code == 401, r.text
    assert "Bearer" in r.headers["www-authenticate"]
    assert (await server.service.history("lobby", identity=server.service.identify(token()))) == []


async def test_posts_are_made_as_sub_and_another_userid_is_403(
    server: Running, client: httpx.AsyncClient
) -> None:
    base = server.url()
    ann = bearer(token("ann"))
    r = await client.post(f"{base}/api/room/lobby", json={"text": "filled in"}, headers=ann)
    assert r.status_code == 201 and r.json()["message"]["userId"] == "ann"
    r = await client.post(f"{base}/api/room/lobby", json={"userId": "ann", "text": "same"}, headers=ann)
    assert r.status_code == 201
    r = await client.post(
        f"{base}/api/room/lobby", json={"userId": "admin", "text": "as another"}, headers=ann
    )
    assert r.status_code == 403 and r.json()["code"] == 403
    r = await client.post(
        f"{base}/api/room/lobby",
        json={"userId": "bob", "text": "on behalf"},
        headers=bearer(token("svc", admin=True)),
    )
    assert r.status_code == 201 and r.json()["message"]["userId"] == "bob"
    page = (await client.get(f"{base}/api/room/lobby/messages", headers=ann)).json()["messages"]
    assert [(m["userId"], m["text"]) for m in page] == [
        ("ann", "filled in"),
        ("ann", "same"),
        ("bob", "on behalf"),
    ]


async def test_only_an_admin_deletes(server: Running, client: httpx.AsyncClient) -> None:
    base = server.url()
    await client.post(f"{base}/api/room/keep", json={"text": "x"}, headers=bearer(token()))
    r = await client.delete(f"{base}/api/room/keep", headers=bearer(token("ann", rooms=["*"])))
    assert r.status_code == 403
    assert (await client.get(f"{base}/api/room/keep", headers=bearer(token()))).json()["lastId"] is not None
    r = await client.delete(f"{base}/api/room/keep", headers=bearer(token("root", admin=True)))
    assert r.status_code == 200
    assert (await client.get(f"{base}/api/room/keep", headers=bearer(token()))).json()["lastId"] is None


async def test_rooms_and_read_claims(server: Running, client: httpx.AsyncClient) -> None:
    base = server.url()
    scoped = bearer(token("ann", rooms=["team-*"], read=["news"]))
    assert (
        await client.post(f"{base}/api/room/team-a", json={"text": "ok"}, headers=scoped)
    ).status_code == 201
    assert (
        await client.post(f"{base}/api/room/lobby", json={"text": "no"}, headers=scoped)
    ).status_code == 403
    assert (
        await client.post(f"{base}/api/room/news", json={"text": "no"}, headers=scoped)
    ).status_code == 403
    assert (await client.get(f"{base}/api/room/news/messages", headers=scoped)).status_code == 200
    assert (await client.get(f"{base}/api/room/lobby/messages", headers=scoped)).status_code == 403
    r = await client.get(f"{base}/api/stream/lobby", headers=scoped)
    assert r.status_code == 403
    async with stream(client, f"{base}/api/stream/news", headers=scoped) as news:
        assert await news.comment() == "connected"
    await client.post(f"{base}/api/room/lobby", json={"text": "x"}, headers=bearer(token()))
    rooms = (await client.get(f"{base}/api/rooms", headers=scoped)).json()["rooms"]
    assert [r["roomId"] for r in rooms] == ["team-a"]  # rooms it may not read are left out


@pytest.mark.parametrize("where", ["header", "cookie", "query"])
async def test_a_stream_takes_its_token_from_each_place(
    server: Running, client: httpx.AsyncClient, where: str
) -> None:
    base = server.url()
    value = token("ann")
    url, headers = f"{base}/api/stream/lobby", {}
    if where == "header":
        headers = bearer(value)
    elif where == "cookie":
        headers = {"cookie": f"theme=dark; roomchat_token={value}"}
    else:
        url += f"?access_token={value}"
    async with stream(client, url, headers=headers) as events:
        assert await events.comment() == "connected"
        await client.post(f"{base}/api/room/lobby", json={"text": "hello"}, headers=bearer(token("bob")))
        (got,) = await events.messages(1)
        assert got.json()["userId"] == "bob"


async def test_anonymous_read_reads_but_never_posts(client: httpx.AsyncClient) -> None:
    settings = ServiceSettings(auth=JwtAuthenticator(SECRET, anonymous_read=True))
    async with serve("rest", service_settings=settings) as server:
        base = server.url()
        async with stream(client, f"{base}/api/stream/lobby") as events:
            assert await events.comment() == "connected"
            r = await client.post(f"{base}/api/room/lobby", json={"userId": "ann", "text": "anon"})
            assert r.status_code == 401
            assert (await client.delete(f"{base}/api/room/lobby")).status_code == 401
            await client.post(f"{base}/api/room/lobby", json={"text": "signed"}, headers=bearer(token()))
            (got,) = await events.messages(1)
            assert got.json()["text"] == "signed"


async def test_an_sse_stream_ends_with_expired_when_its_token_does(
    server: Running, client: httpx.AsyncClient
) -> None:
    base = server.url()
    # Accepted thanks to the 30 s leeway, and past it about five seconds from now.
    short = token("ann", exp=int(time.time()) - 25)
    async with stream(client, f"{base}/api/stream/lobby", headers=bearer(short)) as events:
        assert await events.comment() == "connected"
        r = await client.post(f"{base}/api/room/lobby", json={"text": "before"}, headers=bearer(token()))
        sent = r.json()["message"]["id"]
        (got,) = await events.messages(1)
        ended = await events.next(timeout=15)
        assert ended is not None and ended.event == "expired"
        assert ended.json() == {"lastEventId": sent} and got.id == sent
        assert await events.next() is None
    async with stream(
        client, f"{base}/api/stream/lobby", headers=bearer(token()) | {"last-event-id": sent}
    ) as again:
        assert await again.comment() == "connected"  # resumes with a fresh token, no gap


async def test_grpc_takes_the_token_from_metadata(server: Running) -> None:
    async with room_stub(server.url("grpc")) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.PostToRoom(pb.Message(userId="ann", roomId="lobby", text="hi"))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        meta = (("authorization", f"Bearer {token('ann', rooms=['team-*'])}"),)
        ok = await stub.PostToRoom(pb.Message(roomId="team-a", text="hi"), metadata=meta)
        assert ok.success and '"userId":"ann"' in ok.data
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.PostToRoom(pb.Message(roomId="lobby", text="hi"), metadata=meta)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as not_admin:
            await stub.DeleteRoom(pb.RoomRequest(roomId="team-a"), metadata=meta)
        assert not_admin.value.code() == grpc.StatusCode.PERMISSION_DENIED
        call = stub.StreamRoom(pb.RoomRequest(roomId="lobby"))
        with pytest.raises(grpc.aio.AioRpcError) as stream_refused:
            await call.read()
        assert stream_refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_grpc_stream_ends_unauthenticated_when_its_token_expires(
    server: Running, client: httpx.AsyncClient
) -> None:
    short = (("authorization", f"Bearer {token('ann', exp=int(time.time()) - 25)}"),)
    async with room_stub(server.url("grpc")) as stub:
        call = stub.StreamRoom(pb.RoomRequest(roomId="lobby"), metadata=short)
        await call.initial_metadata()
        r = await client.post(f"{server.url()}/api/room/lobby", json={"text": "one"}, headers=bearer(token()))
        got = await call.read()
        assert got.id == r.json()["message"]["id"]
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await call.read()
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
        trailers = dict(ended.value.trailing_metadata() or ())
        assert trailers["roomchat-last-id"] == got.id


def _public_pem(private: Any) -> bytes:
    return bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.mark.parametrize(
    ("make", "algorithm"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ed25519.Ed25519PrivateKey.generate, "EdDSA"),
    ],
)
async def test_public_keys_choose_the_algorithm(
    tmp_path: Path, client: httpx.AsyncClient, make: Any, algorithm: str
) -> None:
    private = make()
    pem = tmp_path / "key.pem"
    pem.write_bytes(_public_pem(private))
    settings = ServiceSettings(auth=JwtAuthenticator(str(pem), issuer="https://id.example", audience="chat"))
    claims = {"sub": "ann", "iss": "https://id.example", "aud": "chat", "exp": int(time.time()) + 60}
    async with serve("rest", service_settings=settings) as server:
        url = f"{server.url()}/api/room/lobby"
        good = jwt.encode(claims, private, algorithm=algorithm)
        assert (await client.post(url, json={"text": "ok"}, headers=bearer(good))).status_code == 201
        wrong_aud = jwt.encode(claims | {"aud": "other"}, private, algorithm=algorithm)
        wrong_iss = jwt.encode(claims | {"iss": "https://evil.example"}, private, algorithm=algorithm)
        # The classic confusion: HS256 "signed" with the public key as its secret.
        confused = _hs256_by_hand(claims, pem.read_bytes())
        for bad in (wrong_aud, wrong_iss, confused):
            r = await client.post(url, json={"text": "no"}, headers=bearer(bad))
            assert r.status_code == 401, r.text


def _hs256_by_hand(claims: dict[str, Any], secret: bytes) -> str:
    """What PyJWT refuses to make: an HS256 token whose secret is a public key."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    return signing + "." + part(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def test_roomchat_token_mints_what_the_server_accepts() -> None:
    minted = mint(SECRET, "ann", rooms=["team-*"], read=["news"], ttl=60)
    who = JwtAuthenticator(SECRET).identify(minted, "127.0.0.1")
    assert who.user_id == "ann" and not who.admin and who.address == "127.0.0.1"
    assert who.expires is not None and 60 <= who.expires - time.time() <= 91
    with pytest.raises(ValueError, match="at least 32 bytes"):
        mint("short", "ann")


async def test_star_heavy_room_patterns_are_refused_quickly(
    server: Running, client: httpx.AsyncClient
) -> None:
    """`*a*a*a*a*a*a*b` against a 64-character room of `a`s backtracked for 1.8 s a request."""
    base = server.url()
    heavy = bearer(token("ann", rooms=["*a*a*a*a*a*a*b"] * 8, read=["*a*a*a*a*a*a*a*c"]))
    room = "a" * 64
    async with probing(base) as probe:
        started = time.monotonic()
        answers = await asyncio.gather(
            *(client.get(f"{base}/api/room/{room}/messages", headers=heavy) for _ in range(10))
        )
        took = time.monotonic() - started
    assert [r.status_code for r in answers] == [403] * 10
    assert took < 1.0, took
    assert probe.worst < BOUND and not probe.failures, (probe.worst, probe.failures)
    ok = bearer(token("ann", rooms=["*a*a*a*a*a*a*b"]))
    assert (await client.get(f"{base}/api/room/{'a' * 63}b/messages", headers=ok)).status_code == 200
