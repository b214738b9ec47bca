"""Runs one bench: a server, worker processes holding the listeners, one publisher.

The listeners are spread over worker processes so the client is rarely the
limit; each worker reports its count through shared memory while the run
goes, and its tally once at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped]

from roomchat.bench.clients import CLIENTS, BenchClient, StalledStream, Stream, Target
from roomchat.bench.tally import BUCKET_SHIFT, Sink, Tally, marker
from roomchat.tokens import mint

_BENCH_SECRET = uuid.uuid4().hex  # --auth jwt: the started server's HS256 secret (32 hex digits)
OPEN_TIMEOUT = 20.0  # seconds for one stream to open
OPEN_AT_ONCE = 256  # streams a worker opens concurrently (the server's backlog is 2048)


@dataclass(frozen=True)
class Plan:
    transport: str = "sse"
    listeners: int = 100
    messages: int = 1000
    rate: float | None = None  # messages per second; None: flat out
    publishers: int = 4  # connections posting at once, one post in flight on each
    size: int = 0  # pad texts to this many characters
    stalled: int = 0  # extra listeners that never read
    workers: int = 0  # 0: chosen from listeners and cores
    drain: float = 5.0  # seconds without progress before giving up on the rest
    url: str | None = None  # None: start `roomchat serve` on a free port
    pid: int | None = None  # the server's PID, to sample its CPU and memory
    post_path: str = "/api/room/{room}"
    stream_path: str = "/api/stream/{room}"
    text_field: str = "text"
    server_args: tuple[str, ...] = ()
    pin: bool = False  # server on the first core, the client on the others
    auth: str = "none"  # jwt: the server checks a token on every stream and post
    backend: str | None = None  # the started server's --backend
    rooms: int = 1  # rooms each WebSocket listener subscribes to; posts go round them
    presence: bool = False  # each listener names a user of its own and asks for presence events


@dataclass
class Outcome:
    """The raw figures of a run; `report.figures` turns them into the table."""

    plan: Plan
    tally: Tally
    published: int = 0
    publish_seconds: float = 0.0
    deliver_seconds: float = 0.0
    client_cpu: float = 0.0  # seconds, all client processes
    worker_busy: list[float] = field(default_factory=list)  # each worker's CPU share of the run
    server_cpu: float | None = None  # seconds during the publish phase
    rss_start: int | None = None  # bytes, before the listeners connected
    rss_idle: int | None = None  # with every listener connected, before any message
    rss_peak: int | None = None
    stalled_lagged: int = 0
    errors: list[str] = field(default_factory=list)
    start_ns: int = 0  # monotonic time of the first post
    post_hist: dict[int, int] = field(default_factory=dict)  # post round trips, as Tally.hist


Progress = Callable[[str, int, int], None]  # phase, done, total


def workers_for(plan: Plan) -> int:
    if plan.workers:
        return plan.workers
    per_worker = 500 if CLIENTS[plan.transport]().uvloop else 50  # grpc.aio costs more
    return max(1, min(os.cpu_count() or 1, -(-plan.listeners // per_worker)))


def raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < needed:
        raise RuntimeError(f"{needed} streams need `ulimit -n {needed}`; the hard limit is {hard}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM, then SIGKILL if it is still running after `grace` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serve_process(
    adapters: tuple[str, ...], extra: tuple[str, ...] = ()
) -> Iterator[tuple[dict[str, str], int]]:
    """`roomchat serve` with `adapters` on free ports, as a subprocess: ({adapter: url}, pid)."""
    # Every bench stream comes from this machine's one address: the per-IP caps would refuse them.
    args = [sys.executable, "-m", "roomchat", "serve", "--log-level", "warning"]
    args += ["--max-connections-per-ip", "0", "--max-names-per-ip", "0"]
    for name in adapters:
        args += ["--adapter", name, "--port", f"{name}=0"]
    args += list(extra)
    # Its stderr goes to a file: a pipe nobody reads during the run could fill and block it.
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            assert proc.stdout is not None
            urls: dict[str, str] = {}
            while len(urls) < len(adapters):
                line = proc.stdout.readline()
                if not line:
                    proc.wait()
                    errors.seek(0)
                    raise RuntimeError(f"roomchat serve exited: {errors.read().strip()}")
                head, sep, url = line.strip().partition(" listening on ")
                if sep:
                    urls[head.removeprefix("roomchat: ")] = url
            yield urls, proc.pid
        finally:
            stop_process(proc, grace=8)
            if proc.stdout:
                proc.stdout.close()


@contextlib.contextmanager
def started_server(client: BenchClient, plan: Plan) -> Iterator[tuple[str, int]]:
    """The server for this transport: (url, pid)."""
    auth = ("--auth", "jwt", "--jwt-key", _BENCH_SECRET) if plan.auth == "jwt" else ()
    extra = (*plan.server_args, *auth, *(("--backend", plan.backend) if plan.backend else ()))
    with serve_process(client.server_adapters, extra) as (urls, pid):
        yield urls[client.server_adapters[-1]], pid


# -- worker processes --------------------------------------------------------------


def _worker(plan: Plan, target: Target, count: int, slot: int, shared: Any, stop: Any, out: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    runner: Callable[[Any], Any] = asyncio.run
    if CLIENTS[plan.transport]().uvloop:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:  # pragma: no cover
            pass
    out.put(runner(_hold(plan, target, count, slot, shared, stop)))


async def _hold(plan: Plan, target: Target, count: int, slot: int, shared: Any, stop: Any) -> dict[str, Any]:
    """Open `count` streams, publish progress until told to stop, return the tally."""
    client = CLIENTS[plan.transport]()
    tally = Tally()
    streams: list[Stream] = []
    sinks: list[Sink] = []
    connected, received, failed = shared
    gate = asyncio.Semaphore(OPEN_AT_ONCE)
    errors: list[str] = []

    closing = False

    def ended() -> None:
        if not closing:
            tally.ended += 1

    async def open_one(index: int) -> None:
        sink = Sink(tally, plan.messages, plan.publishers)
        mine = _presence_target(target, f"u{slot}-{index}") if plan.presence else target
        async with gate:
            try:
                streams.append(await asyncio.wait_for(client.listen(mine, sink, ended), OPEN_TIMEOUT))
            except Exception as exc:
                tally.failed += 1
                failed[slot] += 1
                if len(errors) < 3:
                    errors.append(f"{type(exc).__name__}: {exc}")
                return
        sinks.append(sink)
        connected[slot] += 1

    await asyncio.gather(*(open_one(i) for i in range(count)))
    cpu0 = time.process_time()
    wall0 = time.monotonic()
    while not stop.is_set():
        received[slot] = tally.received
        await asyncio.sleep(0.05)
    received[slot] = tally.received
    busy = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-9)
    closing = True
    for stream in streams:
        stream.close()
    tally.lagged = sum(1 for s in sinks if s.lagged)
    tally.ended = max(0, tally.ended - tally.lagged)
    return {"tally": tally, "cpu": time.process_time(), "busy": busy, "errors": errors}


def _presence_target(target: Target, user: str) -> Target:
    """The stream path of a listener that is `user` and asks for presence events."""
    joiner = "&" if "?" in target.stream_path else "?"
    return dataclasses.replace(target, stream_path=f"{target.stream_path}{joiner}presence=1&userId={user}")


# -- the run -----------------------------------------------------------------------


class _Server:
    """The server's process and, under `serve --workers N`, its workers."""

    def __init__(self, pid: int | None) -> None:
        self.proc = psutil.Process(pid) if pid else None

    def _tree(self) -> list[psutil.Process]:
        assert self.proc is not None
        with contextlib.suppress(psutil.Error):
            return [self.proc, *self.proc.children(recursive=True)]
        return [self.proc]

    def cpu(self) -> float | None:
        if self.proc is None:
            return None
        total = 0.0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):  # a worker that just ended
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    def rss(self) -> int | None:
        if self.proc is None:
            return None
        total = 0
        for proc in self._tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total


def run(plan: Plan, progress: Progress) -> Outcome:
    """Run the plan to the end (starting a server if no URL was given)."""
    client = CLIENTS[plan.transport]()
    raise_file_limit(plan.listeners + plan.stalled + 256)
    if plan.url is not None:
        return _run(plan, client, plan.url, plan.pid, progress)
    with started_server(client, plan) as (url, pid):
        return _run(plan, client, url, pid, progress)


def _run(plan: Plan, client: BenchClient, url: str, pid: int | None, progress: Progress) -> Outcome:
    token = mint(_BENCH_SECRET, "bench", ttl=86400) if plan.auth == "jwt" else None
    room = f"bench-{uuid.uuid4().hex[:12]}"
    target = Target(
        url, room, "bench", plan.post_path, plan.stream_path, plan.text_field, plan.rooms, token
    )
    server = _Server(pid)
    if plan.pin:
        _pin(server)
    outcome = Outcome(plan, Tally(), rss_start=server.rss())
    n = workers_for(plan)
    ctx = multiprocessing.get_context("fork")
    connected = ctx.Array("q", n, lock=False)
    received = ctx.Array("q", n, lock=False)
    failed = ctx.Array("q", n, lock=False)
    shared = (connected, received, failed)
    stop = ctx.Event()
    out = ctx.Queue()
    counts = [plan.listeners // n + (1 if i < plan.listeners % n else 0) for i in range(n)]
    procs = [
        ctx.Process(target=_worker, args=(plan, target, c, i, shared, stop, out), daemon=True)
        for i, c in enumerate(counts)
    ]
    cpu_before = time.process_time()
    for p in procs:
        p.start()
    try:
        asyncio.run(_drive(plan, client, target, server, outcome, shared, progress))
    finally:
        stop.set()
        results = []
        for _ in procs:
            with contextlib.suppress(Exception):
                results.append(out.get(timeout=30))
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    for r in results:
        outcome.tally.merge(r["tally"])
        outcome.client_cpu += r["cpu"]
        outcome.worker_busy.append(r["busy"])
        outcome.errors += r["errors"]
    outcome.client_cpu += time.process_time() - cpu_before
    if outcome.tally.last_ns and outcome.start_ns:
        outcome.deliver_seconds = (outcome.tally.last_ns - outcome.start_ns) / 1e9
    return outcome


async def _drive(
    plan: Plan,
    client: BenchClient,
    target: Target,
    server: _Server,
    outcome: Outcome,
    shared: tuple[Any, Any, Any],
    progress: Progress,
) -> None:
    connected, received, failed = shared
    # 1. every listener connected (or failed)
    deadline = time.monotonic() + 30 + plan.listeners / 200
    while sum(connected) + sum(failed) < plan.listeners and time.monotonic() < deadline:
        progress("connect", sum(connected), plan.listeners)
        await asyncio.sleep(0.05)
    progress("connect", sum(connected), plan.listeners)
    if sum(connected) < plan.listeners:
        outcome.errors.append(f"only {sum(connected)} of {plan.listeners} streams opened")
    stalled: list[StalledStream] = [await client.stalled(target) for _ in range(plan.stalled)]
    await asyncio.sleep(0.5)  # let the server settle before measuring memory
    outcome.rss_idle = outcome.rss_peak = server.rss()
    publishers = [await client.publisher(target) for _ in range(plan.publishers)]
    # 2. publish
    expected = sum(connected) * plan.messages
    cpu0 = server.cpu()
    start = time.monotonic_ns()
    pad = "x" * plan.size
    k = plan.publishers
    tick = 0.0

    async def post_from(index: int) -> None:
        # publisher `index` posts seq index+1, index+1+k, ...: one in flight per publisher
        nonlocal tick
        for seq in range(index + 1, plan.messages + 1, k):
            if plan.rate:
                delay = start / 1e9 + (seq - 1) / plan.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent = time.monotonic_ns()
            text = marker(seq, sent)
            await publishers[index].post(text + pad[len(text) :] if pad else text)
            bucket = (time.monotonic_ns() - sent) >> BUCKET_SHIFT
            outcome.post_hist[bucket] = outcome.post_hist.get(bucket, 0) + 1
            outcome.published += 1
            now = time.monotonic()
            if now - tick > 0.1:
                tick = now
                progress("publish", sum(received), expected)
                _peak(outcome, server)

    try:
        await asyncio.gather(*(post_from(i) for i in range(k)))
    except (OSError, asyncio.IncompleteReadError) as exc:
        outcome.errors.append(f"publishing stopped: {exc}")
    outcome.publish_seconds = (time.monotonic_ns() - start) / 1e9
    for publisher in publishers:
        await publisher.close()
    # 3. wait for the deliveries, until none arrive for `drain` seconds
    last, quiet = -1, time.monotonic()
    while (got := sum(received)) < expected:
        if got != last:
            last, quiet = got, time.monotonic()
        elif time.monotonic() - quiet > plan.drain:
            break
        progress("deliver", got, expected)
        _peak(outcome, server)
        await asyncio.sleep(0.02)
    progress("deliver", sum(received), expected)
    cpu1 = server.cpu()
    if cpu0 is not None and cpu1 is not None:
        outcome.server_cpu = cpu1 - cpu0
    _peak(outcome, server)
    outcome.start_ns = start
    for s in stalled:
        outcome.stalled_lagged += await s.drain(timeout=5.0)


def _pin(server: _Server) -> None:
    """Keep the client off the server's core, so neither preempts the other (Linux)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise RuntimeError("--pin needs at least 2 cores")
    if server.proc is not None:
        server.proc.cpu_affinity(cores[:1])
    os.sched_setaffinity(0, cores[1:])  # the workers forked next inherit it


def _peak(outcome: Outcome, server: _Server) -> None:
    rss = server.rss()
    if rss is not None and (outcome.rss_peak is None or rss > outcome.rss_peak):
        outcome.rss_peak = rss
