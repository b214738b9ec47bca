"""A soak under ordinary churn: is `/healthz` answered in time while history is full?

    python benchmarks/soak.py [--seconds 240] [--backend memory] [--history 1000]
                              [--rooms 200] [--rate 200] [--source DIR] [--url REST --grpc HOST:PORT]

It starts `roomchat serve --adapter rest --adapter grpc` on 127.0.0.1 (or uses
the servers given with `--url` and `--grpc`), fills every room's history
(`--rooms` x `--history` messages, not timed), then for `--seconds`:

- posts `--rate` messages a second to random rooms, half with an
  `Idempotency-Key` (and some of those retried with the same key);
- keeps SSE, WebSocket and gRPC clients connecting, each resuming from a
  recent id, an old one (most of history to replay) or one no longer in
  history (`gap`), reading for 0.5-4 s, and dropping, cleanly or by a reset;
- asks `/healthz` every 200 ms from a separate process (so this process's own
  loop does not colour the figure) and times each answer.

Every 30 s (and at the end) it prints the server's RSS, open fds, listeners
(from /metrics), the probe's latency p50/p99/max over the window, and the load
average. `--source DIR` runs the server from another checkout (e.g. /work/base)
with this interpreter, for a before/after pair under the same conditions.
Everything targets 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import multiprocessing
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import grpc
import httpx
import psutil
import websockets

from roomchat.adapters.grpc.generated import message_pb2

TEXTS = [
    "plain ascii text " * 6,
    "caf\u00e9 na\u00efve \u00fcber " * 5,
    "\u4f60\u597d\u4e16\u754c " * 20,
    "ok",
]
PROBE_EVERY = 0.2
REPORT_EVERY = 30.0


# -- the server ----------------------------------------------------------------------


@contextlib.contextmanager
def server(args: argparse.Namespace) -> Iterator[tuple[str, str, int | None]]:
    """(rest url, grpc host:port, pid): started here unless --url was given."""
    if args.url:
        yield args.url, args.grpc, None
        return
    command = [sys.executable, "-m", "roomchat", "serve", "--host", "127.0.0.1", "--log-level", "warning"]
    command += ["--adapter", "rest", "--adapter", "grpc", "--port", "rest=0", "--port", "grpc=0"]
    command += ["--backend", args.backend, "--history", str(args.history)]
    env = dict(os.environ)
    if args.source:
        env["PYTHONPATH"] = args.source
    with tempfile.TemporaryFile("w+") as errors:
        cwd = args.source or None  # `-m roomchat` imports from the working directory first
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=cwd)
        try:
            assert proc.stdout is not None
            urls: dict[str, str] = {}
            while len(urls) < 2:
                line = proc.stdout.readline()
                if not line:
                    errors.seek(0)
                    raise SystemExit(f"roomchat serve exited: {errors.read().strip()}")
                head, sep, url = line.strip().partition(" listening on ")
                if sep:
                    urls[head.removeprefix("roomchat: ")] = url
            grpc_url = urls["grpc"]
            yield urls["rest"], urlsplit(grpc_url).netloc if "://" in grpc_url else grpc_url, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            errors.seek(0)
            if tail := errors.read().strip()[-2000:]:
                print(f"server stderr (tail):\n{tail}")


# -- the probe, in a process of its own ------------------------------------------------------


def probe(rest: str, pid: int | None, until: float, out: Any) -> None:
    """GET /healthz every PROBE_EVERY s on one kept-alive connection; to `out`: (seconds it
    took, seconds of CPU the server spent meanwhile). On a loaded machine the first is
    mostly waiting for a core; the second is the work the loop did before answering,
    whatever the load (to /proc's 10 ms ticks)."""
    parts = urlsplit(rest)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    server = psutil.Process(pid) if pid else None

    def cpu() -> float:
        return sum(server.cpu_times()[:2]) if server else float("nan")

    while time.time() < until:
        start, busy = time.perf_counter(), cpu()
        try:
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            out.put((time.perf_counter() - start, cpu() - busy))
        except (OSError, http.client.HTTPException):
            out.put((float("inf"), float("nan")))
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        time.sleep(max(0.0, PROBE_EVERY - (time.perf_counter() - start)))
    conn.close()


# -- the churn ---------------------------------------------------------------------


@dataclass
class State:
    rest: str
    grpc: str
    rooms: list[str]
    ids: dict[str, list[str]] = field(default_factory=dict)  # room: the ids posted here, newest last
    keys: list[tuple[str, str]] = field(default_factory=list)  # (room, key) posted lately
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def resume_from(self, room: str) -> str | None:
        ids = self.ids.get(room) or []
        pick = random.random()
        if not ids or pick < 0.2:
            return None
        if pick < 0.6:
            return ids[max(0, len(ids) - random.randint(1, 20))]  # recent
        if pick < 0.9:
            return ids[max(0, len(ids) - random.randint(500, 990))]  # old: most of history replayed
        return "1-0"  # not in history: gap, then all of it


def _remember(state: State, room: str, message_id: str) -> None:
    ids = state.ids.setdefault(room, [])
    ids.append(message_id)
    if len(ids) > 2000:
        del ids[:1000]


async def fill(state: State, history: int) -> None:
    """Every room's history full, over a few pipelined WebSocket connections."""

    async def one(rooms: list[str]) -> None:
        async with websockets.connect(
            state.rest.replace("http", "ws") + "/api/ws",
            subprotocols=["roomchat.v1"],
            max_size=None,  # type: ignore[list-item]
        ) as ws:
            for room in rooms:
                for start in range(0, history, 100):
                    batch = range(start, min(history, start + 100))
                    for i in batch:
                        text = TEXTS[i % len(TEXTS)]
                        await ws.send(
                            json.dumps(
                                {
                                    "type": "publish",
                                    "roomId": room,
                                    "userId": "fill",
                                    "text": text,
                                    "ref": str(i),
                                }
                            )
                        )
                    for _ in batch:
                        frame = json.loads(await ws.recv())
                        if frame.get("type") == "ack":
                            _remember(state, room, frame["message"]["id"])

    groups = [state.rooms[i::4] for i in range(4)]
    await asyncio.gather(*(one(group) for group in groups))


async def poster(state: State, rate: float, until: float) -> None:
    async with httpx.AsyncClient(
        base_url=state.rest, timeout=10, limits=httpx.Limits(max_connections=16)
    ) as client:
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        start = time.monotonic()
        while time.monotonic() < until:
            n += 1
            task = asyncio.ensure_future(_post(client, state, n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
        await asyncio.gather(*tasks, return_exceptions=True)


async def _post(client: httpx.AsyncClient, state: State, n: int) -> None:
    room = random.choice(state.rooms)
    headers = {}
    if state.keys and random.random() < 0.05:  # a retry of an earlier keyed post
        room, key = random.choice(state.keys)
        headers["Idempotency-Key"] = key
    elif random.random() < 0.5:
        key = f"soak-{n}"
        headers["Idempotency-Key"] = key
        state.keys.append((room, key))
        if len(state.keys) > 5000:
            del state.keys[:2500]
    try:
        answer = await client.post(
            f"/api/room/{room}", json={"userId": "soak", "text": random.choice(TEXTS)}, headers=headers
        )
    except httpx.HTTPError:
        state.count("post error")
        return
    state.count(f"post {answer.status_code}")
    if answer.status_code == 201:
        _remember(state, room, answer.json()["message"]["id"])


async def _hang_up(writer: asyncio.StreamWriter, reset: bool) -> None:
    if reset:  # SO_LINGER 0: the close sends a reset
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def sse_client(state: State) -> None:
    room = random.choice(state.rooms)
    after = state.resume_from(room)
    parts = urlsplit(state.rest)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    resume = f"Last-Event-ID: {after}\r\n" if after else ""
    writer.write(f"GET /api/stream/{room} HTTP/1.1\r\nHost: x\r\n{resume}\r\n".encode())
    deadline = time.monotonic() + random.uniform(0.5, 4)
    with contextlib.suppress(TimeoutError, OSError):
        while (left := deadline - time.monotonic()) > 0:
            if not await asyncio.wait_for(reader.read(65536), left):
                break
    state.count("sse")
    await _hang_up(writer, reset=random.random() < 0.3)


async def ws_client(state: State) -> None:
    rooms = random.sample(state.rooms, random.randint(1, 3))
    url = state.rest.replace("http", "ws") + "/api/ws"
    ws = await websockets.connect(url, subprotocols=["roomchat.v1"], max_size=None)  # type: ignore[list-item]
    try:
        for room in rooms:
            frame: dict[str, Any] = {"type": "subscribe", "roomId": room}
            if after := state.resume_from(room):
                frame["lastId"] = after
            await ws.send(json.dumps(frame))
        if random.random() < 0.3:
            await ws.send(
                json.dumps(
                    {
                        "type": "publish",
                        "roomId": rooms[0],
                        "userId": "ws",
                        "text": "from ws",
                        "ref": "1",
                        "key": f"ws-{random.getrandbits(40)}",
                    }
                )
            )
        deadline = time.monotonic() + random.uniform(0.5, 4)
        with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.wait_for(ws.recv(), left)
    finally:
        state.count("ws")
        if random.random() < 0.3:
            ws.transport.abort()
        else:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)


async def grpc_client(state: State, channel: grpc.aio.Channel) -> None:
    room = random.choice(state.rooms)
    request = message_pb2.RoomRequest(userId="grpc", roomId=room, lastId=state.resume_from(room) or "")
    call = channel.unary_stream("/message.Room/StreamRoom", None, None)(request.SerializeToString())
    if random.random() < 0.2:
        post = message_pb2.Message(userId="grpc", roomId=room, text="from grpc").SerializeToString()
        key = (("idempotency-key", f"grpc-{random.getrandbits(40)}"),) if random.random() < 0.5 else ()
        with contextlib.suppress(grpc.aio.AioRpcError):
            await channel.unary_unary("/message.Room/PostToRoom", None, None)(post, metadata=key, timeout=10)
    deadline = time.monotonic() + random.uniform(0.5, 4)

    async def read() -> None:
        async for _ in call:
            if time.monotonic() > deadline:
                break

    with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
        await asyncio.wait_for(read(), max(0.1, deadline - time.monotonic()))
    call.cancel()
    state.count("grpc")


async def churn(state: State, kind: str, until: float) -> None:
    """One client slot: a client of `kind` after another until the end."""
    channel = grpc.aio.insecure_channel(state.grpc) if kind == "grpc" else None
    try:
        while time.monotonic() < until:
            try:
                if kind == "sse":
                    await sse_client(state)
                elif kind == "ws":
                    await ws_client(state)
                else:
                    assert channel is not None
                    await grpc_client(state, channel)
                    if random.random() < 0.2:  # a new connection now and then
                        await channel.close(None)
                        channel = grpc.aio.insecure_channel(state.grpc)
            except Exception as exc:
                state.count(f"{kind} error {type(exc).__name__}")
                await asyncio.sleep(0.2)
    finally:
        if channel is not None:
            await channel.close(None)


# -- the report ---------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def listeners(rest: str) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(rest + "/metrics")).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("roomchat_listeners{")
    )


def summary(samples: list[tuple[float, float]]) -> str:
    wall = [s[0] * 1000 for s in samples]
    busy = [s[1] * 1000 for s in samples]
    return (
        f"healthz n={len(wall)} p50 {percentile(wall, 50):6.1f} p99 {percentile(wall, 99):6.1f} "
        f"max {max(wall, default=float('nan')):6.1f} ms, "
        f"server CPU meanwhile p99 {percentile(busy, 99):5.0f} max {max(busy, default=float('nan')):5.0f} ms"
    )


async def report(
    state: State, pid: int | None, samples: Any, until: float, every: float
) -> list[tuple[float, float]]:
    everything: list[tuple[float, float]] = []
    window: list[tuple[float, float]] = []
    started = time.monotonic()
    process = psutil.Process(pid) if pid else None
    next_at = started + every
    while True:
        now = time.monotonic()
        while not samples.empty():
            window.append(samples.get_nowait())
        if now >= next_at or now >= until:
            rss = f"{process.memory_info().rss / 2**20:6.0f} MiB" if process else "?"
            fds = process.num_fds() if process else "?"
            print(
                f"t={now - started:5.0f}s rss {rss} fds {fds} listeners {await listeners(state.rest):4d} "
                f"{summary(window)}  load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            everything += window
            window = []
            next_at += every
            if now >= until:
                return everything
        await asyncio.sleep(0.5)


async def main(args: argparse.Namespace) -> None:
    with server(args) as (rest, grpc_address, pid):
        state = State(rest, grpc_address, [f"soak-{i:03d}" for i in range(args.rooms)])
        filled = time.monotonic()
        await fill(state, args.history)
        print(f"filled {args.rooms} rooms x {args.history} in {time.monotonic() - filled:.0f} s", flush=True)
        until = time.monotonic() + args.seconds
        samples: Any = multiprocessing.get_context("spawn").Queue()
        prober = multiprocessing.get_context("spawn").Process(
            target=probe, args=(rest, pid, time.time() + args.seconds, samples)
        )
        prober.start()
        kinds = ["sse"] * args.clients + ["ws"] * args.clients + ["grpc"] * args.clients
        workers = [asyncio.ensure_future(churn(state, kind, until)) for kind in kinds]
        workers.append(asyncio.ensure_future(poster(state, args.rate, until)))
        everything = await report(state, pid, samples, until, args.every)
        await asyncio.gather(*workers, return_exceptions=True)
        prober.join(15)
        print(f"whole run: {summary(everything)}; clients {dict(sorted(state.counts.items()))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--backend", default="memory")
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--rate", type=float, default=200, help="posts per second")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of each transport")
    parser.add_argument("--every", type=float, default=REPORT_EVERY, help="seconds between reports")
    parser.add_argument("--source", help="run the server from this checkout (PYTHONPATH), e.g. /work/base")
    parser.add_argument("--url", help="an already running server's rest URL (with --grpc)")
    parser.add_argument("--grpc", help="its gRPC host:port")
    asyncio.run(main(parser.parse_args()))
