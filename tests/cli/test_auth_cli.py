"""`--auth` from the command line: `roomchat token`, the options' errors, the
warning for an open server on a public address, and tokens kept out of logs."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import jwt

from roomchat.logs import RedactTokens
from tests.cli.test_serve import run_cli
from tests.support import roomchat_process

SECRET = "cli-test-secret-of-at-least-32-bytes"


async def test_a_minted_token_posts_as_its_sub_and_tokens_never_reach_the_log() -> None:
    minted = run_cli("token", "--sub", "ann", "--jwt-key", SECRET, "--rooms", "team-*", "--ttl", "10m")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert token.count(".") == 2
    args = ("--adapter", "rest", "--port", "rest=0", "--auth", "jwt", "--log-level", "debug")
    with roomchat_process(*args, env={"ROOMCHAT_JWT_KEY": SECRET}) as server:
        base = server.urls["rest"]
        async with httpx.AsyncClient() as client:
            ok = await client.post(
                f"{base}/api/room/team-a", json={"text": "hi"}, headers={"authorization": f"Bearer {token}"}
            )
            assert ok.status_code == 201 and ok.json()["message"]["userId"] == "ann"
            denied = await client.post(
                f"{base}/api/room/lobby", json={"text": "hi"}, headers={"authorization": f"Bearer {token}"}
            )
            assert denied.status_code == 403
            forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            for url, headers in (
                (f"{base}/api/stream/team-a?access_token={forged}", {}),
                (f"{base}/api/room/team-a/messages", {"cookie": f"roomchat_token={forged}"}),
                (f"{base}/api/room/team-a", {"authorization": f"Bearer {forged}"}),
            ):
                assert (await client.get(url, headers=headers)).status_code == 401
        # A malformed request carrying a token in its request line, which uvicorn logs about.
        host, port = base.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as raw:
            raw.sendall(f"GET /x?access_token={token} HTTP/1.1\r\nHost: \x00\r\n\r\n".encode())
            await asyncio.to_thread(raw.recv, 4096)
        assert server.terminate() == 0
        assert server.proc.stderr is not None and server.proc.stdout is not None
        logged = server.proc.stderr.read() + server.proc.stdout.read()
    assert token not in logged and forged not in logged
    assert token.split(".")[2] not in logged  # not even the signature


def test_the_redactor_hides_tokens_whoever_logs_them() -> None:
    args = ("/s?access_token=abc.def.ghi&x=1", "eyJa.eyJb.c")
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "GET %s %s", args, None)
    RedactTokens().filter(record)
    assert record.getMessage() == "GET /s?access_token=[redacted]&x=1 [redacted]"


def test_auth_options_fail_with_one_line() -> None:
    for args, expected in (
        (("--auth", "jwt"), "--auth jwt needs --jwt-key"),
        (("--auth", "jwt", "--jwt-key", "short"), "at least 32 bytes"),
        (("--auth", "oauth"), "--auth must be none or jwt"),
        (("--jwt-key", SECRET), "--jwt-key needs --auth jwt"),
        (("--auth", "jwt", "--jwt-key", "/nonexistent/key.pem"), "at least 32 bytes"),
    ):
        out = run_cli("serve", "--adapter", "rest", "--port", "rest=0", *args)
        assert out.returncode != 0
        assert len(out.stderr.strip().splitlines()) == 1 and expected in out.stderr, (args, out.stderr)
    bad_ttl = run_cli("token", "--sub", "ann", "--jwt-key", SECRET, "--ttl", "9" * 5000)
    assert bad_ttl.returncode != 0 and "--ttl takes a duration" in bad_ttl.stderr


def test_an_open_server_on_a_public_address_warns_once() -> None:
    with roomchat_process("--adapter", "rest", "--port", "rest=0", "--host", "0.0.0.0") as server:
        assert server.terminate() == 0
        assert server.proc.stderr is not None
        warnings = [line for line in server.proc.stderr.read().splitlines() if "warning" in line]
    assert len(warnings) == 1 and "--auth none" in warnings[0]
    with roomchat_process("--adapter", "rest", "--port", "rest=0") as quiet:
        assert quiet.terminate() == 0
        assert quiet.proc.stderr is not None
        assert "--auth none" not in quiet.proc.stderr.read()


async def test_a_token_without_exp_is_refused_unless_jwt_allow_no_exp() -> None:
    """A token with no `exp` would be good for ever once leaked: 401 by default."""
    forever = jwt.encode({"sub": "ann"}, SECRET, algorithm="HS256")
    headers = {"authorization": f"Bearer {forever}"}
    args = ("--adapter", "rest", "--port", "rest=0", "--auth", "jwt", "--jwt-key", SECRET)
    for extra, status in (((), 401), (("--jwt-allow-no-exp",), 200)):
        with roomchat_process(*args, *extra) as server:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"{server.urls['rest']}/api/room/lobby/messages", headers=headers)
            assert r.status_code == status, (extra, r.text)
            if status == 401:
                assert '"exp"' in r.json()["message"] and r.headers["www-authenticate"].startswith("Bearer")
            assert server.terminate() == 0
