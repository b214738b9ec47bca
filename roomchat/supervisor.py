"""`roomchat serve --workers N`: N worker processes on the same ports, one supervisor.

Each worker is `roomchat serve` itself (the same options, `--workers 1`), its
adapters bound with SO_REUSEPORT so the kernel spreads new connections over
the workers. The first worker binds the ports (port 0 picks them); the others
are then started on the ports it printed. The supervisor owns the signals:
workers run in their own process group, so a terminal's Ctrl-C reaches only
the supervisor, which stops them all; a worker that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

log = logging.getLogger("roomchat.supervisor")

STOP = 4.5  # seconds workers get to stop before they are killed (the contract allows 5 in all)
QUICK_DEATH = 5.0  # a worker that dies sooner than this after starting is restarted after a pause
PAUSE = 1.0
_LISTENING = " listening on "
_PR_SET_PDEATHSIG = 1


class WorkerFailed(Exception):
    """A worker could not start; it has already said why on stderr."""

    def __init__(self, code: int) -> None:
        super().__init__(f"a worker exited with {code}")
        self.code = code


def one_per_core() -> int:
    """What `--workers 0` means: the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def die_with_supervisor() -> None:
    """In a worker: be sent SIGTERM if the supervisor goes away, even killed (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # it was gone before prctl took effect
        raise SystemExit(0)


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    started: float
    lines: list[str] = field(default_factory=list)  # its `listening` lines


class Supervisor:
    """Runs `command` (a `roomchat serve` that prints `adapters` listening lines) N times."""

    def __init__(self, command: Sequence[str], workers: int, adapters: int) -> None:
        self._command = list(command)
        self._count = workers
        self._adapters = adapters
        self._ports: list[str] = []  # `--port NAME=PORT` the first worker bound
        self._stopping = asyncio.Event()
        self._workers: dict[int, _Worker] = {}
        self._forwarding: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        """Start every worker, print the listening lines once, watch; 0 once stopped by a signal."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        try:
            starting = asyncio.ensure_future(self._start_all())
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():  # a signal while starting
                starting.cancel()
                return 0
            stop.cancel()
            for line in starting.result():
                print(line, flush=True)
            watchers = [asyncio.ensure_future(self._watch(k)) for k in self._workers]
            await self._stopping.wait()
            for watcher in watchers:
                watcher.cancel()
            return 0
        except WorkerFailed as exc:
            return exc.code
        finally:
            await self._stop_all()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def _reload(self) -> None:
        """SIGHUP: every worker reads the configuration file again itself."""
        for worker in self._workers.values():
            if worker.proc.returncode is None:
                worker.proc.send_signal(signal.SIGHUP)

    async def _start_all(self) -> list[str]:
        """The first worker binds the ports (0 picks them), the others join it there."""
        first = await self._start(1)
        self._ports = [arg for line in first.lines for arg in _port_args(line)]
        await asyncio.gather(*(self._start(k) for k in range(2, self._count + 1)))
        return first.lines

    async def _start(self, index: int) -> _Worker:
        """Start worker `index` and wait until every adapter of it is listening."""
        proc = await asyncio.create_subprocess_exec(
            *self._command,
            "--workers",
            "1",
            "--worker",
            str(index),
            *self._ports,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            process_group=0,  # the supervisor alone gets the terminal's signals
        )
        worker = _Worker(index, proc, asyncio.get_running_loop().time())
        self._workers[index] = worker
        assert proc.stdout is not None
        while len(worker.lines) < self._adapters:
            line = (await proc.stdout.readline()).decode(errors="replace")
            if not line:  # it exited; its stderr (ours) says why
                raise WorkerFailed(await proc.wait() or 1)
            if _LISTENING in line:
                worker.lines.append(line.rstrip("\n"))
            else:
                sys.stdout.write(line)
        forwarding = asyncio.ensure_future(_forward(proc.stdout))
        self._forwarding.add(forwarding)
        forwarding.add_done_callback(self._forwarding.discard)
        return worker

    async def _watch(self, index: int) -> None:
        """Restart worker `index` whenever it dies, until the supervisor stops."""
        while True:
            worker = self._workers[index]
            code = await worker.proc.wait()
            if self._stopping.is_set():
                return
            how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
            log.warning("worker %d (pid %d) %s; starting it again", index, worker.proc.pid, how)
            if asyncio.get_running_loop().time() - worker.started < QUICK_DEATH:
                await asyncio.sleep(PAUSE)  # do not spin on a worker that cannot stay up
            try:
                restarted = await self._start(index)
            except WorkerFailed:
                continue  # `_workers[index]` is the failed one: its wait() returns at once
            log.warning("worker %d restarted (pid %d)", index, restarted.proc.pid)

    async def _stop_all(self) -> None:
        running = [w.proc for w in self._workers.values() if w.proc.returncode is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not running:
            return
        waits = [asyncio.ensure_future(proc.wait()) for proc in running]
        _, late = await asyncio.wait(waits, timeout=STOP)
        for proc in running:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if late:
            await asyncio.wait(late, timeout=1)


def _port_args(line: str) -> list[str]:
    """`roomchat: rest listening on http://127.0.0.1:8080` -> ["--port", "rest=8080"]."""
    head, _, url = line.partition(_LISTENING)
    name = head.removeprefix("roomchat: ").strip()
    with contextlib.suppress(ValueError):
        port = urlsplit(url.strip()).port
        if port:
            return ["--port", f"{name}={port}"]
    return []


async def _forward(stdout: asyncio.StreamReader) -> None:
    """Pass on whatever else a worker prints, so its pipe never fills."""
    while line := await stdout.readline():
        sys.stdout.write(line.decode(errors="replace"))
        sys.stdout.flush()


def supervise(command: Sequence[str], workers: int, adapters: int) -> int:
    """Run the supervisor in a fresh event loop; its exit code."""
    code = asyncio.run(Supervisor(command, workers, adapters).run())
    sys.stdout.flush()
    return code
