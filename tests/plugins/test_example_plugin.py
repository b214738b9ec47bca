"""The worked example of docs/plugins.md, installed as its own distribution and run
through `roomchat serve` as a user would, with a real TCP client."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_documented_commands import run_as_shown, shown_serve_output
from tests.support import Process, roomchat_process

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "examples" / "roomchat-ndjson"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`pip install` the example into a folder of its own, found through PYTHONPATH.

    The main environment stays as it was; building from a copy keeps build/ and
    *.egg-info out of examples/.
    """
    source = tmp_path_factory.mktemp("src") / "roomchat-ndjson"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    return str(target)


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class Client:
    """One ndjson connection: the protocol of examples/roomchat-ndjson."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, first: bytes | None = None, tls: ssl.SSLContext | None = None) -> Client:
        host, port = url.split("://")[1].rsplit(":", 1)
        client = cls(*await asyncio.open_connection(host, int(port), ssl=tls))
        if first is not None:
            client.send(first)
        return client

    def send(self, *lines: Any) -> None:
        for line in lines:
            self.writer.write(line if isinstance(line, bytes) else json.dumps(line).encode() + b"\n")

    async def line(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.reader.readline(), 5)
        assert raw.endswith(b"\n"), f"connection ended: {raw!r}"
        value: dict[str, Any] = json.loads(raw)
        return value

    async def not_keepalive(self) -> dict[str, Any]:
        """The next line that is not a keepalive."""
        while (line := await self.line()) == {"event": "keepalive"}:
            pass
        return line

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""


def _serve(plugin_path: str, *args: str, expect: int = 1) -> Any:
    return roomchat_process("--adapter", "ndjson", "--port", "ndjson=0", *args, expect=expect,
                            env={"PYTHONPATH": plugin_path})  # fmt: skip


async def _terminate_within_5_s(server: Process) -> None:
    started = time.monotonic()
    server.proc.terminate()
    assert await asyncio.to_thread(server.proc.wait, 5) == 0
    assert time.monotonic() - started < 5
    assert server.proc.stderr is not None
    logged = server.proc.stderr.read()
    assert all(bad not in logged for bad in ("Traceback", " ERROR ", "roomchat: error")), logged


def test_roomchat_adapters_lists_the_plugin(plugin_path: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "roomchat", "adapters"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": plugin_path},
        check=True,
    )
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["ndjson"] == ["roomchat-ndjson", "0.1.0"]
    assert rows["rest"] == ["roomchat", "0.1.0"]


def test_plugins_md_shows_what_serve_says(plugin_path: str) -> None:
    [(args, said)] = shown_serve_output("plugins.md")
    run_as_shown(args, said, {"PYTHONPATH": plugin_path})


async def test_serve_starts_the_plugin_beside_a_built_in_one(plugin_path: str) -> None:
    with _serve(plugin_path, "--adapter", "rest", "--port", "rest=0", expect=2) as server:
        assert server.urls["ndjson"].startswith("tcp://127.0.0.1:")
        rest = server.urls["rest"]
        ann = await Client.open(server.urls["ndjson"], b'{"room": "lobby"}\n')
        ann.send({"userId": "ann", "text": "over tcp"}, {"userId": "ann", "text": " "})
        got = [await ann.line(), await ann.line()]
        assert {g.get("text") or g.get("error") for g in got} == {
            "over tcp",
            "text must not be empty or only whitespace",
        }
        first = next(g for g in got if "text" in g)
        async with httpx.AsyncClient(timeout=5) as http:
            page = (await http.get(f"{rest}/api/room/lobby/messages")).json()["messages"]
            assert page == [first]  # stored once, the same message on every transport
            posted = await http.post(f"{rest}/api/room/lobby", json={"userId": "bob", "text": "over rest"})
            assert await ann.line() == posted.json()["message"]
        bob = await Client.open(
            server.urls["ndjson"], json.dumps({"room": "lobby", "lastId": first["id"]}).encode() + b"\n"
        )
        assert (await bob.line())["text"] == "over rest"  # resumed after `first`: no duplicate, no gap
        await _terminate_within_5_s(server)
        for client in (ann, bob):
            assert await client.line() == {"event": "shutdown", "lastId": posted.json()["message"]["id"]}
            assert await client.closed()


async def test_bad_input_gets_an_error_line_never_a_hang(plugin_path: str) -> None:
    with _serve(
        plugin_path, "--adapter", "rest", "--port", "rest=0", "--keepalive", "0.3", expect=2
    ) as server:
        url = server.urls["ndjson"]
        cases = {
            b"hello\n": 'the first line must be {"room": "...", "lastId": "..."}',
            b'{"room": "lobby", "lastId": 5}\n': 'the first line must be {"room": "...", "lastId": "..."}',
            b'{"room": "no spaces"}\n': "roomId must be 1-64 characters of A-Z a-z 0-9 - _ .",
            b"x" * 100_000 + b"\n": "a line must be at most 65536 bytes",
            b"": "no first line within 0.3 s",
        }
        for first, error in cases.items():
            client = await Client.open(url, first)
            assert (await client.line())["error"] == error
            assert await client.closed()

        # --keepalive 0.3: on a busy machine a keepalive may come before any answer.
        chat = await Client.open(url, b'{"room": "lobby"}\n')
        assert await chat.line() == {"event": "keepalive"}  # idle stream
        chat.send(b"[1, 2]\n", {"userId": 7, "text": "x"})
        assert await chat.not_keepalive() == {"error": "each line must be a JSON object"}
        assert await chat.not_keepalive() == {"error": "userId must be a string", "field": "userId"}
        chat.send({"userId": "ann", "text": "still here"})
        assert (await chat.not_keepalive())["text"] == "still here"  # the connection went on

        chat.send(b'{"text": "' + b"y" * 70_000 + b'"}\n')
        assert await chat.not_keepalive() == {"error": "a line must be at most 65536 bytes"}
        assert await chat.closed()

        watcher = await Client.open(url, b'{"room": "lobby", "lastId": "1-0"}\n')
        gap = await watcher.not_keepalive()
        assert (gap["event"], gap["lastEventId"]) == ("gap", "1-0")  # then all of history
        assert (await watcher.not_keepalive())["text"] == "still here"
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.delete(f"{server.urls['rest']}/api/room/lobby")).status_code == 200
        assert (await watcher.not_keepalive())["event"] == "deleted"
        assert await watcher.closed()
        await _terminate_within_5_s(server)  # no client left: stops at once, still exit 0


async def test_tls_with_the_common_options(plugin_path: str, tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    with _serve(plugin_path, "--tls-cert", str(cert), "--tls-key", str(key)) as server:
        assert server.urls["ndjson"].startswith("tls://127.0.0.1:")
        tls = ssl.create_default_context(cafile=str(cert))
        client = await Client.open(server.urls["ndjson"], b'{"room": "secret"}\n', tls=tls)
        client.send({"userId": "ann", "text": "over tls"})
        assert (await client.line())["text"] == "over tls"
        await _terminate_within_5_s(server)
        assert (await client.line())["event"] == "shutdown"


async def test_piped_lines_then_a_half_close_get_their_replies_in_order_and_the_stream_goes_on(
    plugin_path: str,
) -> None:
    with _serve(plugin_path, "--adapter", "rest", "--port", "rest=0", expect=2) as server:
        for round_ in range(10):  # the replies raced the half-close about 1 time in 6
            room = f"piped{round_}"
            piped = await Client.open(server.urls["ndjson"])
            piped.send(
                {"room": room},
                {"userId": "ann", "text": "one"},
                {"userId": "ann", "text": " "},
                b"not json\n",
                {"userId": "ann", "text": "two"},
            )
            piped.writer.write(b'{"userId": "ann", "text": "three, no newline"}')
            piped.writer.write_eof()  # `printf ... | socat`: no more input
            got = [await piped.line() for _ in range(5)]
            assert [g.get("text") or g.get("error") for g in got] == [
                "one",
                "text must not be empty or only whitespace",
                "each line must be a JSON object",
                "two",
                "three, no newline",
            ]
            async with httpx.AsyncClient(timeout=5) as http:
                later = {"userId": "bob", "text": "later"}
                posted = await http.post(f"{server.urls['rest']}/api/room/{room}", json=later)
            assert await piped.line() == posted.json()["message"]  # still listening after the half-close
        await _terminate_within_5_s(server)


async def test_a_listener_that_half_closes_at_once_still_gets_the_room(plugin_path: str) -> None:
    rest = ("--adapter", "rest", "--port", "rest=0", "--keepalive", "0.2")
    with _serve(plugin_path, *rest, expect=2) as server:
        listener = await Client.open(server.urls["ndjson"], b'{"room": "quiet"}\n')
        listener.writer.write_eof()  # `echo '{"room": "quiet"}' | socat -t3 ...`
        assert await listener.line() == {"event": "keepalive"}  # listening, not hung up on
        async with httpx.AsyncClient(timeout=5) as http:
            hi = {"userId": "bob", "text": "hi"}
            posted = await http.post(f"{server.urls['rest']}/api/room/quiet", json=hi)
        assert await listener.not_keepalive() == posted.json()["message"]
        await _terminate_within_5_s(server)
        assert (await listener.not_keepalive())["event"] == "shutdown"


def test_a_port_in_use_names_the_address(plugin_path: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "roomchat", "serve", "--adapter", "ndjson", "--port", f"ndjson={port}"],
            capture_output=True, text=True, timeout=20, env={**os.environ, "PYTHONPATH": plugin_path},
        )  # fmt: skip
    assert out.returncode == 1
    expected = f"ndjson cannot listen on 127.0.0.1:{port}: address already in use"
    assert out.stderr == f"roomchat: error: {expected}\n"
