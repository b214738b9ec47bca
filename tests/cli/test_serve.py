"""`roomchat serve` and `roomchat adapters` as a user runs them: a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from roomchat import __version__
from roomchat.adapters.registry import available
from tests.support import RawStream, roomchat_process


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roomchat", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_adapters_lists_the_built_in_ones_with_distribution_and_version() -> None:
    out = run_cli("adapters")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert lines["rest"] == ["roomchat", "0.1.0"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_ends_open_streams_cleanly_and_exits_0(sig: signal.Signals) -> None:
    with roomchat_process("--adapter", "rest", "--port", "rest=0") as server:
        base = server.urls["rest"]
        streams = [await RawStream.open(base, f"/api/stream/room{i}") for i in range(3)]
        for s in streams:
            await s.chunk()  # connected
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{base}/api/room/room0", json={"userId": "a", "text": "bye"})
            assert r.status_code == 201
        started = time.monotonic()
        server.proc.send_signal(sig)
        for i, s in enumerate(streams):
            events = await asyncio.wait_for(s.events(), 5)  # ends with the chunked terminator
            assert [e.json()["text"] for e in events] == (["bye"] if i == 0 else [])
        code = await asyncio.to_thread(server.proc.wait, 5)
        assert code == 0  # not -15: uvicorn's own signal handlers are kept out of the way
        assert time.monotonic() - started < 5
        assert server.proc.stderr is not None
        assert "Traceback" not in server.proc.stderr.read()


def test_serves_every_adapter_by_default_in_one_process() -> None:
    names = sorted(available())
    ports = [arg for name in names for arg in ("--port", f"{name}=0")]
    with roomchat_process(*ports, expect=len(names)) as server:
        assert sorted(server.urls) == names
        assert server.urls["rest"].startswith("http://127.0.0.1:")
        assert server.terminate() == 0


def test_environment_variables_set_options() -> None:
    env = {"ROOMCHAT_ADAPTER": "rest", "ROOMCHAT_PORT": "rest=0", "ROOMCHAT_MAX_TEXT": "5"}
    with roomchat_process(env=env) as server:
        base = server.urls["rest"]
        ok = httpx.post(f"{base}/api/room/r", json={"userId": "a", "text": "12345"})
        too_long = httpx.post(f"{base}/api/room/r", json={"userId": "a", "text": "123456"})
        assert (ok.status_code, too_long.status_code) == (201, 422)
        assert "at most 5" in too_long.json()["message"]
        assert server.terminate() == 0


def _one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> None:
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("roomchat: error: ")
    for word in words:
        assert word in lines[0]
    assert "Traceback" not in out.stderr


def test_unknown_adapter_is_one_clear_line() -> None:
    _one_line_error(run_cli("serve", "--adapter", "carrier-pigeon"), "carrier-pigeon")


def test_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(run_cli("serve", "--adapter", "rest", "--port", f"rest={port}"), "rest", "in use")
        # With another adapter already up: still one line, no uvicorn chatter.
        both = run_cli("serve", "--adapter", "rest", "--adapter", "html", "--port", f"html={port}")
        _one_line_error(both, "html", "in use")


def _ports(ports: dict[str, object]) -> str:
    return ",".join(f"{name}={port}" for name, port in ports.items())


def test_a_second_server_is_one_line_naming_every_address_and_says_nothing_is_listening() -> None:
    env = {"ROOMCHAT_ADAPTER": "grpc,html,rest"}  # a comma list, as --port takes
    any_port = _ports(dict.fromkeys(["grpc", "html", "rest"], 0))
    with roomchat_process("--port", any_port, expect=3, env=env) as first:
        taken = {name: url.rsplit(":", 1)[1] for name, url in first.urls.items()}
        second = run_cli("serve", "--port", _ports(taken), env=env)
        assert first.terminate() == 0
    in_use = [f"{name} cannot listen on 127.0.0.1:{port}: address already in use"
              for name, port in taken.items()]
    _one_line_error(second, *in_use)
    assert "never retrieved" not in second.stderr
    assert "listening" not in second.stdout


@pytest.mark.parametrize("busy", ["rest", "grpc"])
def test_no_adapter_says_listening_when_another_cannot_bind(busy: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"grpc": 0, "html": 0, "rest": 0, busy: port}
        out = run_cli("serve", "--adapter", "grpc,html,rest", "--port", _ports(ports))
    _one_line_error(out, f"{busy} cannot listen on 127.0.0.1:{port}")
    assert "listening" not in out.stdout


@pytest.mark.parametrize("adapter", ["rest", "grpc"])
def test_a_missing_tls_file_is_named(adapter: str) -> None:
    tls = ["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"]
    _one_line_error(run_cli("serve", "--adapter", adapter, *tls), adapter, "/nonexistent/cert.pem")


def test_bare_roomchat_prints_its_help() -> None:
    out = run_cli()
    assert out.returncode == 2
    assert out.stderr.startswith("Usage: roomchat") and "error" not in out.stderr


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--port", "rest"], "NAME=PORT"),
        (["--port", "rest=99999"], "from 0 to 65535"),
        (["--port", "rest=70000"], "from 0 to 65535"),
        (["--port", "rest=-1"], "from 0 to 65535"),
        (["--port", "rest=" + "9" * 4301], "from 0 to 65535"),
        (["--history", "0"], "history"),
        (["--bogus"], "bogus"),
        (["--backend", "carrier://x"], "backend"),
        (["--log-level", "loud"], "log-level"),
        (["--tls-cert", "x.pem"], "tls"),
    ],
)
def test_bad_options_are_one_clear_line(args: list[str], word: str) -> None:
    _one_line_error(run_cli("serve", "--adapter", "rest", *args), word)


@pytest.mark.parametrize("args", [["--version"], ["version"]])
def test_the_version_both_ways(args: list[str]) -> None:
    out = run_cli(*args)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"{__version__}\n", "")


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("serve", ["--adapter NAME", "--port NAME=PORT", "--backend URL", "--history N",
                   "--keepalive SECONDS"]),
        ("bench", ["--url URL", "-n, --listeners N", "--rate N", "--transport sse|ws|grpc"]),
    ],
)
def test_help_shows_placeholders_not_types(command: str, shown: list[str]) -> None:
    out = run_cli(command, "--help")
    assert out.returncode == 0
    assert all(f"  {option} " in out.stdout for option in shown), out.stdout
    assert not re.search(r"<[a-z]", out.stdout), out.stdout  # no `<int range>` or `<list[str]>`


@pytest.mark.parametrize(
    ("args", "env", "why"),
    [
        ([], {}, "all found; choose with --adapter NAME"),
        ([], {"ROOMCHAT_ADAPTER": ","}, "all found; choose with --adapter NAME"),  # an empty list
        (["--all"], {}, "--all: every adapter found"),
        (["--adapter", "rest"], {}, "chosen with --adapter"),
    ],
)
def test_it_says_which_adapters_it_serves_and_why_before_serving(
    args: list[str], env: dict[str, str], why: str
) -> None:
    names = sorted(available()) if "rest" not in args else ["rest"]
    ports = ",".join(f"{name}=0" for name in names)
    with roomchat_process(*args, "--port", ports, expect=len(names), env=env) as server:
        assert server.said[0] == f"roomchat: serving {', '.join(names)} ({why})"
        assert all(" listening on " in line for line in server.said[1:])
        assert server.terminate() == 0


def test_json_logs_at_debug_say_what_starts() -> None:
    logging = ("--log-json", "--log-level", "debug")
    with roomchat_process("--adapter", "rest", "--port", "rest=0", *logging) as server:
        url = server.urls["rest"]
        assert server.terminate() == 0
        assert server.proc.stderr is not None
        logged = [json.loads(line)["message"] for line in server.proc.stderr.read().splitlines()]
    said = [json.loads(line) for line in server.said]  # stdout's lines are JSON too
    assert [line["message"] for line in said] == [
        "serving rest (chosen with --adapter)",
        f"rest listening on {url}",
    ]
    assert said[0]["version"] == "0.1.0"
    assert "backend memory, history=1000 max-text=4096 buffer=1024 keepalive=15.0" in logged
