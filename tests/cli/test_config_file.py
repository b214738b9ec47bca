"""`serve --config FILE.toml` and SIGHUP, as an operator uses them (contract: Configuration file)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.tokens import mint
from tests.adapters.grpc.client import read, room_stub
from tests.backends.redis_server import RedisServer, redis_server
from tests.cli.test_serve import _one_line_error, run_cli
from tests.support import Log, Process, roomchat_process, stream
from tests.ws_client import ws_connect

KEY_A = "the-first-secret-of-at-least-32-bytes"
KEY_B = "the-second-secret-of-at-least-32-bytes"
FRIEND = "https://friend.example"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _settings(out: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """`roomchat config`'s lines as {key: 'value  # source'}."""
    assert out.returncode == 0, out.stderr
    return {
        line.partition(" = ")[0]: line.partition(" = ")[2]
        for line in out.stdout.splitlines()
        if " = " in line and not line.startswith("#")
    }


# -- precedence and errors ------------------------------------------------------------


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "roomchat.toml", '[serve]\nhistory = 7\nmax-text = 70\nrate = 2\nhost = "::1"\n'
    )
    out = run_cli(
        "config",
        "--config",
        str(config),
        "--history",
        "9",
        env={"ROOMCHAT_HISTORY": "8", "ROOMCHAT_MAX_TEXT": "80"},
    )
    settings = _settings(out)
    assert settings["history"] == "9  # flag"
    assert settings["max-text"] == "80  # env ROOMCHAT_MAX_TEXT"
    assert settings["rate"] == f"2.0  # file {config}"
    assert settings["host"] == f'"::1"  # file {config}'
    assert settings["buffer"] == "1024  # default"


def test_roomchat_config_masks_secrets_and_reads_roomchat_config_from_the_env(tmp_path: Path) -> None:
    config = _write(tmp_path / "c.toml", f'[serve]\nauth = "jwt"\njwt-key = "{KEY_A}"\n')
    out = run_cli("config", env={"ROOMCHAT_CONFIG": str(config)})
    settings = _settings(out)
    assert settings["jwt-key"] == f'"********"  # file {config}'
    assert KEY_A not in out.stdout


async def test_a_real_server_takes_its_options_from_the_file_under_env_and_flags(tmp_path: Path) -> None:
    config = _write(tmp_path / "c.toml", '[serve]\nadapter = ["rest"]\nport = ["rest=0"]\nmax-text = 5\n')

    async def longest_text(*args: str, env: dict[str, str] | None = None) -> int:
        """The longest text the server takes, among 5, 8 and 10 characters."""
        with roomchat_process("--config", str(config), *args, env=env) as server:
            async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
                taken = [
                    size
                    for size in (5, 8, 10, 11)
                    if (
                        await client.post("/api/room/r", json={"userId": "ann", "text": "x" * size})
                    ).is_success
                ]
        return max(taken, default=0)

    assert await longest_text() == 5  # the file
    assert await longest_text(env={"ROOMCHAT_MAX_TEXT": "8"}) == 8  # env over the file
    assert await longest_text("--max-text", "10", env={"ROOMCHAT_MAX_TEXT": "8"}) == 10  # flag over env


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("[serve]\nhistroy = 5\n", ("histroy", "unknown key"), id="unknown-key"),
        pytest.param('[serve]\nhistory = "many"\n', ("history", "whole number"), id="wrong-type"),
        pytest.param('[serve]\nadapter = "rest"\n', ("adapter", "array"), id="not-an-array"),
        pytest.param("[serve]\nhistory = 0\n", ("history", "at least 1"), id="out-of-range"),
        pytest.param("[server]\nhistory = 5\n", ("server", "[serve]"), id="unknown-table"),
        pytest.param("[serve\n", ("not valid TOML",), id="not-toml"),
    ],
)
def test_a_bad_file_is_one_error_line_naming_the_file_and_key(
    tmp_path: Path, text: str, words: tuple[str, ...]
) -> None:
    config = _write(tmp_path / "bad.toml", text)
    out = run_cli("serve", "--config", str(config))
    _one_line_error(out, str(config), *words)


def test_a_missing_file_is_one_error_line() -> None:
    _one_line_error(run_cli("serve", "--config", "/nonexistent/roomchat.toml"), "/nonexistent/roomchat.toml")


# -- SIGHUP ----------------------------------------------------------------------------


@pytest.fixture
def reloading(tmp_path: Path) -> Iterator[tuple[Process, Path]]:
    config = _write(
        tmp_path / "roomchat.toml",
        '[serve]\nadapter = ["rest", "grpc"]\nport = ["rest=0", "grpc=0"]\n'
        f'auth = "jwt"\njwt-key = "{KEY_A}"\nanonymous-read = true\n',
    )
    with roomchat_process("--config", str(config), expect=2) as server:
        yield server, config


async def test_sighup_applies_keys_origins_and_rate_while_every_stream_goes_on(
    reloading: tuple[Process, Path],
) -> None:
    server, config = reloading
    base, grpc_url = server.urls["rest"], server.urls["grpc"]
    old = mint(KEY_A, "ann", ttl=600)
    new = mint(KEY_B, "ann", ttl=600)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client, room_stub(grpc_url) as stub:
        preflight = {"Origin": FRIEND, "Access-Control-Request-Method": "POST"}
        assert (
            "access-control-allow-origin"
            not in (await client.options("/api/room/r", headers=preflight)).headers
        )
        async with (
            stream(client, f"{base}/api/stream/r?access_token={old}") as sse,
            ws_connect(
                base, subprotocols=["roomchat.v1"], additional_headers={"Authorization": f"Bearer {old}"}
            ) as ws,
        ):
            await ws.subscribe("r")
            call = stub.StreamRoom(pb.RoomRequest(roomId="r"), metadata=[("authorization", f"Bearer {old}")])
            await asyncio.wait_for(call.initial_metadata(), 5)

            _write(
                config,
                config.read_text().replace(KEY_A, KEY_B)
                + f'cors-origin = ["{FRIEND}"]\nrate = 1\nhistory = 50\n',
            )
            server.proc.send_signal(signal.SIGHUP)
            log = Log(server)
            line = log.wait_for("reloaded", str(config))
            assert "--jwt-key" in line and "--cors-origin" in line and "--rate" in line
            assert "--history" in log.wait_for("needs a restart")

            # the new key, origins and rate are in force for new requests...
            refused = await client.post(
                "/api/room/r", json={"text": "x"}, headers={"Authorization": f"Bearer {old}"}
            )
            assert refused.status_code == 401
            posted = await client.post(
                "/api/room/r", json={"text": "after"}, headers={"Authorization": f"Bearer {new}"}
            )
            assert posted.is_success, posted.text
            answers = [
                await client.post(
                    "/api/room/r", json={"text": text}, headers={"Authorization": f"Bearer {new}"}
                )
                for text in ("again", "third")  # a rate of 1 a second bursts to 2
            ]
            assert [answer.status_code for answer in answers] == [201, 429]
            allowed = await client.options("/api/room/r", headers=preflight)
            assert allowed.headers.get("access-control-allow-origin") == FRIEND
            # ...and every stream opened before the reload, with the old key, still delivers
            assert json.loads((await sse.messages(1))[0].data)["text"] == "after"
            assert (await ws.messages(1))[0]["text"] == "after"
            assert [m.text for m in await read(call, 1)] == ["after"]
            call.cancel()
        assert server.proc.poll() is None


async def test_a_file_that_no_longer_parses_keeps_the_running_settings(
    reloading: tuple[Process, Path],
) -> None:
    server, config = reloading
    _write(config, "[serve\nrate = 1\n")
    server.proc.send_signal(signal.SIGHUP)
    assert "not valid TOML" in Log(server).wait_for("keeping the running settings")
    async with httpx.AsyncClient(base_url=server.urls["rest"], timeout=10) as client:
        token = {"Authorization": f"Bearer {mint(KEY_A, 'ann', ttl=600)}"}
        for text in ("one", "two", "three"):  # no rate came in
            assert (await client.post("/api/room/r", json={"text": text}, headers=token)).is_success
    assert server.proc.poll() is None


def test_sighup_without_a_config_file_is_logged_and_changes_nothing() -> None:
    with roomchat_process("--adapter", "rest", "--port", "rest=0") as server:
        server.proc.send_signal(signal.SIGHUP)
        Log(server).wait_for("SIGHUP", "unchanged")
        assert httpx.get(server.urls["rest"] + "/healthz", timeout=10).status_code == 200


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


async def test_the_supervisor_passes_sighup_to_every_worker(redis: RedisServer, tmp_path: Path) -> None:
    config = _write(
        tmp_path / "roomchat.toml",
        f'[serve]\nadapter = ["rest"]\nport = ["rest=0"]\nbackend = "{redis.url}"\nworkers = 2\n',
    )
    with roomchat_process("--config", str(config)) as server:
        base = server.urls["rest"]
        preflight = {"Origin": FRIEND, "Access-Control-Request-Method": "POST"}
        _write(config, config.read_text() + f'cors-origin = ["{FRIEND}"]\n')
        server.proc.send_signal(signal.SIGHUP)
        log = Log(server)
        log.wait_for("reloaded", "--cors-origin")
        log.wait_for("reloaded", "--cors-origin")  # the second worker's line
        for _ in range(20):  # new connections land on either worker: each must allow it now
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                answer = await client.options("/api/room/r", headers=preflight)
                assert answer.headers.get("access-control-allow-origin") == FRIEND
        assert server.proc.poll() is None
