"""A private redis-server for tests: a free port, a temporary directory, no shared state."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process that a test may kill and start again on the same port.

    `durable=True` writes an append-only file with fsync on every write, so a
    killed server comes back with every write it acknowledged.
    """

    def __init__(self, directory: Path, durable: bool = False, args: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.durable = durable
        self.args = args  # more redis-server options, e.g. ("--replicaof", "127.0.0.1", "6379")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "no"]
        if self.durable:
            persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.directory),
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "redis-server exited at start"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.01)
        raise AssertionError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@contextlib.contextmanager
def redis_server(directory: Path, durable: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(directory, durable)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def start_replica(directory: Path, primary: RedisServer, *args: str) -> RedisServer:
    """A replica of `primary` (more redis-server `args` given), started and synced."""
    directory.mkdir(parents=True, exist_ok=True)
    replica = RedisServer(directory, args=("--replicaof", "127.0.0.1", str(primary.port), *args))
    replica.start()
    deadline = time.monotonic() + 10
    while True:
        with socket.create_connection(("127.0.0.1", replica.port), 1) as s:
            s.sendall(b"INFO replication\r\n")
            time.sleep(0.02)  # the reply is small: one read after a moment gets it whole
            if b"master_link_status:up" in s.recv(65536):
                return replica
        if time.monotonic() > deadline:
            replica.kill()
            raise AssertionError("the replica did not sync")
