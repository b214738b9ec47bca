"""A reconnect storm: thousands of roomchat_client clients on one server that restarts.

    python benchmarks/client_storm.py [--clients 2000] [--processes 4] [--rooms 20]
                                      [--messages 5] [--signal TERM|KILL]

Starts `roomchat serve --adapter rest --backend sqlite:///...` on a fixed port,
then `--processes` worker processes that each open their share of `--clients`
clients (one `Client` each, one subscription each, rooms dealt round-robin).
Once all are subscribed it posts `--messages` to every room, waits until every
client has them, stops the server with `--signal` and starts it again on the
same port at once, and posts `--messages` more to every room as soon as it
listens. Each client notes when its connection came back (`on_state`) and
when it had every message; each checks that it got every message of its room
once and in order.

It prints: how long the server was away; from the server's return, how long
until every client was connected again and until every client had every
message (resubscribed and caught up); the peak rate of new connections the
server saw (successful handshakes per second, in the busiest 1-second and
100-ms windows); and messages lost, duplicated or out of order (should be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx

TIMEOUT = 120.0  # seconds a worker waits for its clients to catch up
BATCH = 50  # clients a worker subscribes at once before the restart


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- a worker process: its share of the clients ----------------------------------


async def worker(url: str, first: int, count: int, rooms: int, messages: int) -> dict[str, Any]:
    import roomchat_client

    expected = 2 * messages
    up_at: list[float] = []  # when each connection came up after the first one
    done_at: dict[int, float] = {}
    got: dict[int, list[str]] = {n: [] for n in range(first, first + count)}
    all_done = asyncio.Event()
    started = asyncio.Event()

    def on_state(up: bool) -> None:
        if up and started.is_set():
            up_at.append(time.time())

    async def one(n: int, client: roomchat_client.Client) -> None:
        try:
            subscription = await client.subscribe(f"storm-{n % rooms}")
        except Exception as exc:
            print(f"client {n} could not subscribe: {exc!r}", file=sys.stderr, flush=True)
            raise
        ready.append(n)
        async for event in subscription:
            if isinstance(event, roomchat_client.Message):
                got[n].append(event.text)
                if len(got[n]) == expected:
                    done_at[n] = time.time()
                    if len(done_at) == count:
                        all_done.set()

    ready: list[int] = []
    numbers = range(first, first + count)
    clients = [roomchat_client.Client(url, user_id=f"c{n}", on_state=on_state) for n in numbers]
    for client in clients:
        await client.__aenter__()
    tasks = []
    for n, client in zip(numbers, clients, strict=True):  # in batches: the storm is the restart's
        tasks.append(asyncio.create_task(one(n, client)))
        while len(ready) < len(tasks) - BATCH:
            await asyncio.sleep(0.05)
    while len(ready) < count:
        await asyncio.sleep(0.05)
    started.set()
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_done.wait(), TIMEOUT)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    lost = duplicated = disorder = 0
    for n, texts in got.items():
        want = [f"{n % rooms}-{k}" for k in range(expected)]
        unique = list(dict.fromkeys(texts))
        lost += len(set(want) - set(unique))
        duplicated += len(texts) - len(unique)
        disorder += unique != [t for t in want if t in set(unique)]
    return {"up_at": up_at, "done_at": list(done_at.values()), "lost": lost, "duplicated": duplicated,
            "out_of_order": disorder, "clients": count, "finished": len(done_at)}


# -- the conductor --------------------------------------------------------------------


class Server:
    def __init__(self, port: int, db: str) -> None:
        self.port, self.db = port, db
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roomchat", "serve", "--adapter", "rest", "--port", f"rest={self.port}",
             "--backend", f"sqlite:///{self.db}", "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if " listening on " in line:
                return
        raise RuntimeError("roomchat serve exited")

    def stop(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(30)


async def post_round(url: str, rooms: int, start: int, messages: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for k in range(start, start + messages):
            for room in range(rooms):
                body = {"userId": "poster", "text": f"{room}-{k}"}
                r = await http.post(f"/api/room/storm-{room}", json=body)
                r.raise_for_status()


def peak(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_right(times, t + window) - i for i, t in enumerate(times)), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--messages", type=int, default=5)
    parser.add_argument("--signal", choices=("TERM", "KILL"), default="TERM")
    worker_args = ("PORT", "FIRST", "COUNT", "ROOMS", "MESSAGES")
    parser.add_argument("--worker", nargs=5, type=int, metavar=worker_args)
    args = parser.parse_args()
    if args.worker:
        port, first, count, rooms, messages = args.worker
        result = asyncio.run(worker(f"http://127.0.0.1:{port}", first, count, rooms, messages))
        print(json.dumps(result), flush=True)
        return

    print(f"load average before: {os.getloadavg()}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(port, f"{tmp}/storm.db")
        server.start()
        share = args.clients // args.processes
        workers = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", str(port), str(i * share), str(share), str(args.rooms),
                 str(args.messages)],
                stdout=subprocess.PIPE, text=True,
            )
            for i in range(args.processes)
        ]
        try:
            t0 = time.time()
            for w in workers:
                assert w.stdout is not None and w.stdout.readline().strip() == "ready"
            print(f"{share * args.processes} clients subscribed in {time.time() - t0:.1f} s")
            asyncio.run(post_round(url, args.rooms, 0, args.messages))
            time.sleep(1.0)  # the first round reaches everyone (checked at the end, not relied on)
            killed = time.time()
            server.stop(getattr(signal, f"SIG{args.signal}"))
            server.start()
            back = time.time()
            asyncio.run(post_round(url, args.rooms, args.messages, args.messages))
            results = []
            for w in workers:
                assert w.stdout is not None
                results.append(json.loads(w.stdout.read().strip().splitlines()[-1]))
                w.wait(30)
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
            if server.proc is not None and server.proc.poll() is None:
                server.stop(signal.SIGTERM)
    ups = [t for r in results for t in r["up_at"]]
    dones = [t for r in results for t in r["done_at"]]
    total = sum(r["clients"] for r in results)
    print(f"server stopped with SIG{args.signal} and back in {back - killed:.2f} s")
    print(f"connected again: {len(ups)} of {total}, the last {max(ups) - back:.2f} s after its return")
    print(f"caught up (every message of the room): {len(dones)} of {total}, "
          f"the last {max(dones) - back:.2f} s after its return")
    print(f"peak new connections: {peak(ups, 1.0)} in one second, {peak(ups, 0.1)} in 100 ms")
    spread = sorted(t - back for t in ups)
    print("reconnects after the server was back, by second: "
          + ", ".join(str(sum(1 for t in spread if s <= t < s + 1)) for s in range(int(spread[-1]) + 1)))
    lost = sum(r["lost"] for r in results)
    dup = sum(r["duplicated"] for r in results)
    disorder = sum(r["out_of_order"] for r in results)
    print(f"messages lost {lost}, duplicated {dup}, clients out of order {disorder}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
