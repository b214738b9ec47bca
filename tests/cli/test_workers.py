"""`roomchat serve --workers N` as a user runs it: a supervisor and its workers, over Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import psutil
import pytest

from roomchat.adapters.grpc.generated import message_pb2 as pb
from tests.adapters.grpc.client import read, room_stub
from tests.backends.redis_server import RedisServer, redis_server
from tests.cli.test_serve import _one_line_error, run_cli
from tests.support import Process, RawStream, roomchat_process


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


def _workers(server: Process) -> list[psutil.Process]:
    return psutil.Process(server.proc.pid).children()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _streams_by_worker(server: Process, port: int) -> dict[int, int]:
    """How many established connections to `port` each worker holds."""
    return {
        w.pid: sum(1 for c in w.net_connections("tcp") if c.laddr.port == port and c.status == "ESTABLISHED")
        for w in _workers(server)
    }


async def _open_streams(base: str, room: str, count: int) -> list[RawStream]:
    streams = [await RawStream.open(base, f"/api/stream/{room}") for _ in range(count)]
    for s in streams:
        await s.chunk()  # the stream is up: its listener is registered
    return streams


def _serve(redis: RedisServer, *adapters: str, workers: str = "2") -> AbstractContextManager[Process]:
    args = [a for name in adapters for a in ("--adapter", name, "--port", f"{name}=0")]
    return roomchat_process(*args, "--backend", redis.url, "--workers", workers, expect=len(adapters))


async def test_two_workers_share_the_ports_and_the_rooms(redis: RedisServer) -> None:
    with _serve(redis, "rest", "grpc") as server:
        assert len(_workers(server)) == 2
        base = server.urls["rest"]
        # The kernel spreads connections by their source port: 24 land on both workers.
        streams = await _open_streams(base, "lobby", 24)
        spread = _streams_by_worker(server, _port(base))
        assert sorted(spread.values())[0] > 0, spread
        async with room_stub(server.urls["grpc"]) as stub:
            grpc_streams = [stub.StreamRoom(pb.RoomRequest(roomId="lobby")) for _ in range(8)]
            for call in grpc_streams:
                await call.initial_metadata()
            async with httpx.AsyncClient() as client:
                r = await client.post(f"{base}/api/room/lobby", json={"userId": "ann", "text": "hi all"})
                assert r.status_code == 201
            for call in grpc_streams:
                assert [m.text for m in await read(call, 1)] == ["hi all"]
                call.cancel()
        for s in streams:
            assert [e.json()["text"] for e in await asyncio.wait_for(s.events(budget=1), 5)] == ["hi all"]
            s.cut()
        assert server.terminate() == 0
        assert server.proc.stdout is not None
        assert " listening on " not in server.proc.stdout.read()  # each adapter's line came once


async def test_a_killed_worker_is_started_again(redis: RedisServer) -> None:
    with _serve(redis, "rest") as server:
        victim, survivor = _workers(server)
        victim.kill()
        assert server.proc.stderr is not None
        lines = []
        while not any("restarted" in line for line in lines):
            line = await asyncio.wait_for(asyncio.to_thread(server.proc.stderr.readline), 20)
            assert line, f"the supervisor exited: {lines}"
            lines.append(line)
        assert "was killed by signal 9" in "".join(lines)
        now = {w.pid for w in _workers(server)}
        assert len(now) == 2 and survivor.pid in now and victim.pid not in now
        # The new worker serves on the shared port: some of many new streams land on it.
        base = server.urls["rest"]
        streams = await _open_streams(base, "again", 24)
        assert all(n > 0 for n in _streams_by_worker(server, _port(base)).values())
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{base}/api/room/again", json={"userId": "ann", "text": "back"})
            assert r.status_code == 201
        for s in streams:
            assert [e.json()["text"] for e in await asyncio.wait_for(s.events(budget=1), 5)] == ["back"]
            s.cut()
        assert server.terminate() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_stops_every_worker_within_5_s(redis: RedisServer, sig: signal.Signals) -> None:
    with _serve(redis, "rest") as server:
        workers = _workers(server)
        base = server.urls["rest"]
        streams = await _open_streams(base, "bye", 16)
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{base}/api/room/bye", json={"userId": "ann", "text": "last"})
            assert r.status_code == 201
        started = time.monotonic()
        server.proc.send_signal(sig)
        for s in streams:  # each ends cleanly, after the message it was sent
            events = await asyncio.wait_for(s.events(), 5)
            assert [e.json()["text"] for e in events] == ["last"]
        code = await asyncio.to_thread(server.proc.wait, 5)
        assert code == 0
        assert time.monotonic() - started < 5
        _, alive = psutil.wait_procs(workers, timeout=1)
        assert not alive
        assert server.proc.stderr is not None
        assert "Traceback" not in server.proc.stderr.read()


def test_workers_are_refused_on_the_memory_backend() -> None:
    out = run_cli("serve", "--adapter", "rest", "--workers", "2")
    _one_line_error(out, "--workers 2", "redis://", "memory")


def test_a_worker_that_cannot_start_stops_the_supervisor_with_one_line() -> None:
    unreachable = RedisServer(Path("/nonexistent")).url  # a free port nobody listens on
    out = run_cli("serve", "--adapter", "rest", "--backend", unreachable, "--workers", "2")
    _one_line_error(out, "cannot reach Redis")


def test_workers_die_with_a_killed_supervisor(redis: RedisServer) -> None:
    with _serve(redis, "rest") as server:
        workers = _workers(server)
        server.proc.kill()
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive


def test_workers_0_is_one_per_core(redis: RedisServer) -> None:
    with _serve(redis, "rest", workers="0") as server:
        cores = len(os.sched_getaffinity(0))
        assert len(_workers(server)) == (cores if cores > 1 else 0)
        assert server.terminate() == 0
