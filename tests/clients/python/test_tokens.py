"""A token callable keeps a subscription (and posts) alive across expiries under `--auth jwt`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from roomchat_client import Client, Message, RoomchatError

from tests.clients.python.support import Server, reading, until

SECRET = "a-test-secret-of-at-least-32-bytes!"
LIFE = 3  # seconds a short token is good for (the server allows 30 s past `exp`)


def short_token(sub: str = "ann") -> str:
    exp = int(time.time()) - 30 + LIFE
    return jwt.encode({"sub": sub, "exp": exp}, SECRET, algorithm="HS256")


def admin_token() -> str:
    return jwt.encode({"sub": "poster", "admin": True, "exp": int(time.time()) + 600}, SECRET, "HS256")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with Server("--auth", "jwt", "--jwt-key", SECRET) as running:
        yield running


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_a_token_function_keeps_a_subscription_alive_across_expiries(server: Server, kind: str) -> None:
    minted: list[str] = []

    def mint() -> str:
        minted.append(short_token())
        return minted[-1]

    async def mint_async() -> str:
        return mint()

    sent: list[str] = []
    async with (
        Client(server.url, token=mint if kind == "plain" else mint_async) as client,
        httpx.AsyncClient(base_url=server.url, headers={"authorization": f"Bearer {admin_token()}"}) as http,
    ):
        subscription = await client.subscribe("secret")
        async with reading(subscription) as got:
            deadline = time.monotonic() + 3 * LIFE + 1  # three expiries at least
            while time.monotonic() < deadline:
                r = await http.post("/api/room/secret", json={"text": f"m{len(sent)}"})
                assert r.status_code == 201, r.text
                sent.append(r.json()["message"]["text"])
                await until(lambda: len(got) == len(sent), 10, "the message, live or resumed")
            mine = await client.publish("secret", "from ann")  # with whatever token is current
            await until(lambda: len(got) == len(sent) + 1, 10, "ann's message")
    assert [e.text for e in got if isinstance(e, Message)] == [*sent, "from ann"]
    assert mine.user_id == "ann" and len(minted) >= 3


async def test_a_plain_string_token_that_expires_ends_the_subscription_with_401(server: Server) -> None:
    async with Client(server.url, token=short_token()) as client:
        subscription = await client.subscribe("secret-2")
        with pytest.raises(RoomchatError) as ended:
            async with asyncio.timeout(3 * LIFE):
                async for _ in subscription:
                    pass
        assert ended.value.code == 401
