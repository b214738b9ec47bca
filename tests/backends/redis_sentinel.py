"""A Redis primary, its replica and three sentinels of the test's own, on free ports.

The sentinels notice a dead primary after `DOWN_AFTER_MS` and promote the
replica within a few seconds, so a test can kill the primary and watch
roomchat follow the promotion.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.backends.redis_server import REDIS_SERVER, RedisServer, free_port, start_replica

SERVICE = "roomchat"
DOWN_AFTER_MS = 1_000
FAILOVER_TIMEOUT_MS = 5_000


class SentinelSet:
    """`primary` replicated by `replica`, watched by three sentinels (quorum 2)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        for name in ("primary", "sentinels"):
            (directory / name).mkdir(parents=True, exist_ok=True)
        # The replica logs in as `replica`, so a test can cut replication off (`cut_replication`).
        self.primary = RedisServer(
            directory / "primary", args=("--user", "replica", "on", ">replica", "+@all")
        )
        self.replica: RedisServer | None = None
        self.sentinel_ports = [free_port() for _ in range(3)]
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> None:
        self.primary.start()
        self.replica = start_replica(
            self.directory / "replica", self.primary, "--masteruser", "replica", "--masterauth", "replica"
        )
        for port in self.sentinel_ports:
            self._sentinels.append(self._start_sentinel(port))
        # Each sentinel knows the replica and the two other sentinels before a test may kill anything.
        self._until(
            lambda: all(
                (m := self._sentinel(port, "MASTER", SERVICE))
                and int(m["num-slaves"]) == 1
                and int(m["num-other-sentinels"]) == 2
                for port in self.sentinel_ports
            ),
            "the sentinels know each other and the replica",
        )

    def primary_port(self) -> int | None:
        """The port the sentinels name as the primary now."""
        with contextlib.suppress(redis.RedisError):
            host_port = self._sentinel(self.sentinel_ports[0], "GET-MASTER-ADDR-BY-NAME", SERVICE)
            return int(host_port[1])
        return None

    def cut_replication(self) -> None:
        """From now on the primary's writes no longer reach the replica (which stays a candidate)."""
        client = redis.Redis(port=self.primary.port, socket_timeout=1)
        try:
            client.execute_command("ACL", "SETUSER", "replica", "off")
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")
        finally:
            client.close()

    def stop(self) -> None:
        for proc in self._sentinels:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        self._sentinels = []
        if self.replica is not None:
            self.replica.kill()
        self.primary.kill()

    def _start_sentinel(self, port: int) -> subprocess.Popen[bytes]:
        conf = self.directory / "sentinels" / f"{port}.conf"  # rewritten by the sentinel: its own file
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {self.directory / 'sentinels'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        )
        proc = subprocess.Popen(
            [REDIS_SERVER, str(conf), "--sentinel", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._until(lambda: self._sentinel(port, "MASTER", SERVICE) is not None, "a sentinel starts")
        return proc

    @staticmethod
    def _sentinel(port: int, *command: str) -> object:
        client = redis.Redis(port=port, decode_responses=True, socket_timeout=1)
        try:
            return client.execute_command("SENTINEL", *command)
        finally:
            client.close()

    @staticmethod
    def _until(condition: object, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError, KeyError):
                if condition():  # type: ignore[operator]
                    return
            assert time.monotonic() < deadline, f"timed out waiting until {what}"
            time.sleep(0.05)


@contextlib.contextmanager
def sentinel_set(directory: Path) -> Iterator[SentinelSet]:
    servers = SentinelSet(directory)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()
