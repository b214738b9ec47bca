"""`--jwt-jwks`: keys from a JWKS the test serves on 127.0.0.1, rotated in the middle."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roomchat.bootstrap import ServiceSettings
from roomchat.jwks import REFRESH, JwksKeys
from roomchat.tokens import JwtAuthenticator
from tests.support import serve

RSA_A = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_B = ec.generate_private_key(ec.SECP256R1())


def jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if alg == "RS256" else jwt.algorithms.ECAlgorithm
    public: dict[str, Any] = algorithm.to_jwk(private.public_key(), as_dict=True)
    return {**public, "kid": kid, "alg": alg, "use": "sig"}


def token(private: Any, kid: str, alg: str, sub: str = "ann") -> str:
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + 600}
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": kid})


class Provider:
    """An identity provider's JWKS endpoint: the keys it publishes now, and how often it was asked."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = json.dumps({"keys": provider.keys}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"


@pytest.fixture
def provider() -> Iterator[Provider]:
    found = Provider([jwk(RSA_A, "a", "RS256")])
    thread = threading.Thread(target=found.server.serve_forever, daemon=True)
    thread.start()
    yield found
    found.server.shutdown()
    found.server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_keys_rotate_and_an_unknown_kid_fetches_at_most_once_a_minute(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="roomchat.access")
    clock = Clock()
    keys = JwksKeys(provider.url, clock=clock)
    settings = ServiceSettings(auth=JwtAuthenticator(None, jwks=keys))
    first = token(RSA_A, "a", "RS256")
    rotated = token(EC_B, "b", "ES256", sub="bob")
    async with serve("rest", service_settings=settings, access_log=True) as server:
        base = server.url()

        async def post(bearer: str, where: str = "header") -> httpx.Response:
            async with httpx.AsyncClient(timeout=5) as client:
                if where == "query":
                    return await client.post(f"{base}/api/room/r?access_token={bearer}", json={"text": "hi"})
                headers = {"authorization": f"Bearer {bearer}"}
                return await client.post(f"{base}/api/room/r", json={"text": "hi"}, headers=headers)

        assert provider.fetches == 1  # at start-up
        ok = await post(first)
        assert ok.status_code == 201 and ok.json()["message"]["userId"] == "ann"

        provider.keys = [jwk(EC_B, "b", "ES256")]  # the provider rotates: a new key, the old one gone
        clock.now += 1
        early = await post(rotated, "query")  # within a minute of the last fetch: no fetch
        assert early.status_code == 401 and "kid" in early.json()["message"]
        assert provider.fetches == 1

        clock.now += REFRESH
        later = await post(rotated)  # an unknown kid, a minute on: one fetch, and the new key works
        assert later.status_code == 201 and later.json()["message"]["userId"] == "bob"
        assert provider.fetches == 2
        for made_up in ("c", "d", "e"):
            refused = await post(token(RSA_A, made_up, "RS256"))
            assert refused.status_code == 401
        assert provider.fetches == 2  # made-up kids cost the provider nothing
        gone = await post(token(RSA_A, "a", "RS256", sub="cy"))  # a fresh token under the retired key
        assert gone.status_code == 401

    fields = [record.__dict__["fields"] for record in caplog.records if record.name == "roomchat.access"]
    assert [each["status"] for each in fields] == [201, 401, 201, 401, 401, 401, 401]
    assert fields[1]["path"] == "/api/room/r?access_token=[redacted]"
    logged = caplog.text + json.dumps(fields)
    assert first not in logged and rotated not in logged and rotated.split(".")[2] not in logged


def test_an_unreachable_jwks_stops_the_server_with_one_line() -> None:
    from tests.backends.redis_server import free_port
    from tests.cli.test_serve import _one_line_error, run_cli

    url = f"http://127.0.0.1:{free_port()}/jwks.json"
    out = run_cli("serve", "--adapter", "rest", "--auth", "jwt", "--jwt-jwks", url)
    _one_line_error(out, "--jwt-jwks", url)


def test_a_symmetric_key_in_the_set_is_ignored(provider: Provider) -> None:
    secret = "a-shared-secret-of-at-least-32-bytes!!"
    provider.keys = [{"kty": "oct", "kid": "s", "k": jwt.utils.base64url_encode(secret.encode()).decode()}]
    keys = JwksKeys(provider.url)
    forged = jwt.encode({"sub": "mallory"}, secret, algorithm="HS256", headers={"kid": "s"})
    with pytest.raises(Exception, match="kid"):
        JwtAuthenticator(None, jwks=keys).identify(forged)
