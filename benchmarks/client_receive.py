"""The Python client receiving from one room flat out, beside the bench's raw WebSocket client.

    python benchmarks/client_receive.py [--mode replay|live] [--messages 20000] [--rounds 3]

Starts `roomchat serve --adapter rest`, then per round three listener
processes on one room at once: `roomchat_client` (a `Client` and a
subscription iterated with `async for`); the `websockets` library alone as the
client uses it, counting markers in each frame's bytes with no JSON (the floor
under the client); and the bench's raw client (`roomchat.bench.ws_client`: an
asyncio Protocol that finds frames and counts markers, no JSON parse). All on
the default asyncio loop.

`--mode replay` (the default) posts `--messages` once, before the rounds, and
each listener subscribes from before the first (`lastId` that is in no room:
a gap, then all of history), so the server sends as fast as the listener
reads: the client is the bottleneck. `--mode live` posts them during each
round over REST with `--publishers` kept-alive connections, so the rate is
the posts' (a few thousand a second on this machine).

Each listener reports messages/s (first to last delivery) and its own CPU
time per message (`time.process_time()` from subscribed to the last message:
the socket reads, frame parsing, JSON, the client's bookkeeping), with loss,
duplicates and order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from roomchat.bench import ws_client
from roomchat.bench.clients import Target
from roomchat.bench.runner import serve_process
from roomchat.bench.tally import MARK, Sink, Tally, marker
from roomchat.bench.ws_client import WsClient

ROOM = "flat-out"
KINDS = ("python", "websockets", "raw")
BEFORE_ALL = "0-0"  # a lastId no room holds: the server answers a gap and all of history


async def listen_python(url: str, messages: int, publishers: int, replay: bool) -> dict[str, Any]:
    import roomchat_client

    cpu0, start_ns = time.process_time(), time.monotonic_ns()
    async with roomchat_client.Client(url) as client:
        subscription = await client.subscribe(ROOM, last_id=BEFORE_ALL if replay else None)
        print("ready", flush=True)
        seen: set[int] = set()
        last = [-1] * publishers  # each publisher's posts arrive in the order it made them
        dup, disorder, first_ns = 0, 0, start_ns if replay else 0
        async with asyncio.timeout(60):
            async for event in subscription:
                if not isinstance(event, roomchat_client.Message):
                    continue
                found = MARK.search(event.text.encode())
                if found is None:
                    continue
                seq = int(found.group(1))
                first_ns = first_ns or time.monotonic_ns()
                dup += seq in seen
                disorder += seq < last[seq % publishers]
                seen.add(seq)
                last[seq % publishers] = max(last[seq % publishers], seq)
                if len(seen) == messages:
                    break
        return _report(len(seen), dup, disorder, first_ns, time.monotonic_ns(), time.process_time() - cpu0)


async def listen_websockets(url: str, messages: int, publishers: int, replay: bool) -> dict[str, Any]:
    """The `websockets` library alone, as the client uses it, with no JSON: the floor under the client."""
    from websockets.asyncio.client import connect

    cpu0, start_ns = time.process_time(), time.monotonic_ns()
    ws_url = url.replace("http://", "ws://", 1) + "/api/ws"
    async with connect(ws_url, subprotocols=["roomchat.v1"], compression=None, proxy=None) as ws:  # type: ignore[list-item]
        frame: dict[str, str] = {"type": "subscribe", "roomId": ROOM}
        if replay:
            frame["lastId"] = BEFORE_ALL
        await ws.send(json.dumps(frame))
        print("ready", flush=True)
        tally = Tally()
        sink = _Timed(Sink(tally, messages, publishers))
        sink.first_ns = start_ns if replay else 0
        async with asyncio.timeout(120):
            while tally.received < messages:
                sink.feed(await ws.recv(decode=False) + b"\n", time.monotonic_ns())
    cpu = time.process_time() - cpu0
    return _report(tally.received, tally.duplicated, tally.out_of_order, sink.first_ns, tally.last_ns, cpu)


async def listen_raw(url: str, messages: int, publishers: int, replay: bool) -> dict[str, Any]:
    if replay:  # the bench subscribes without lastId; here from before the first message
        frame = json.dumps({"type": "subscribe", "roomId": ROOM, "lastId": BEFORE_ALL}).encode()
        ws_client._subscribes = lambda target: ws_client.client_frame(frame)
    tally = Tally()
    sink = _Timed(Sink(tally, messages, publishers))
    cpu0, start_ns = time.process_time(), time.monotonic_ns()
    if replay:
        sink.first_ns = start_ns
    stream = await WsClient().listen(Target(url, ROOM), sink, lambda: None)  # type: ignore[arg-type]
    print("ready", flush=True)
    async with asyncio.timeout(120):
        while tally.received < messages:
            await asyncio.sleep(0.005)
    cpu = time.process_time() - cpu0
    stream.close()
    return _report(tally.received, tally.duplicated, tally.out_of_order, sink.first_ns, tally.last_ns, cpu)


class _Timed:
    """A Sink that also notes when the first bytes came."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.first_ns = 0

    def feed(self, data: bytes, now: int) -> None:
        self.first_ns = self.first_ns or now
        self.sink.feed(data, now)


def _report(got: int, dup: int, disorder: int, first: int, last: int, cpu: float) -> dict[str, Any]:
    seconds = max(1e-9, (last - first) / 1e9)
    return {"received": got, "duplicated": dup, "out_of_order": disorder,
            "per_s": got / seconds, "cpu_us": cpu / max(1, got) * 1e6}


async def post_all(url: str, messages: int, publishers: int) -> float:
    target = Target(url, ROOM)
    posters = [await WsClient().publisher(target) for _ in range(publishers)]
    start = time.perf_counter()

    async def run(p: int) -> None:
        for seq in range(p + 1, messages + 1, publishers):
            await posters[p].post(marker(seq, time.monotonic_ns()))

    await asyncio.gather(*(run(p) for p in range(publishers)))
    for poster in posters:
        await poster.close()
    return messages / (time.perf_counter() - start)


def round_(url: str, messages: int, publishers: int, replay: bool) -> dict[str, Any]:
    procs = {
        kind: subprocess.Popen(
            [sys.executable, __file__, "--listen", kind, "--url", url, "--messages", str(messages),
             "--publishers", str(publishers), "--mode", "replay" if replay else "live"],
            stdout=subprocess.PIPE, text=True,
        )
        for kind in KINDS
    }
    for proc in procs.values():
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    results: dict[str, Any] = {}
    if not replay:
        print(f"posted {asyncio.run(post_all(url, messages, publishers)):,.0f}/s")
    for kind, proc in procs.items():
        assert proc.stdout is not None
        out = proc.stdout.read()  # not communicate(): it would skip what readline() buffered
        proc.wait(10)
        results[kind] = json.loads(out.strip().splitlines()[-1])
    return results


def _line(kind: str, got: dict[str, Any], messages: int) -> str:
    lost = messages - got["received"]
    return (f"{kind} {got['per_s']:,.0f} msg/s {got['cpu_us']:.1f} µs CPU/msg "
            f"(lost {lost}, dup {got['duplicated']}, out of order {got['out_of_order']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--history", type=int, default=100000)  # keeps every message of a run
    parser.add_argument("--mode", choices=("replay", "live"), default="replay")
    parser.add_argument("--listen", choices=KINDS)
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.listen:
        listen = {"python": listen_python, "websockets": listen_websockets, "raw": listen_raw}[args.listen]
        replay = args.mode == "replay"
        print(json.dumps(asyncio.run(listen(args.url, args.messages, args.publishers, replay))), flush=True)
        return
    print(f"load average before: {os.getloadavg()}")
    rows = []
    replay = args.mode == "replay"
    with serve_process(("rest",), ("--history", str(args.history))) as (urls, _):
        if replay:
            rate = asyncio.run(post_all(urls["rest"], args.messages, args.publishers))
            print(f"history filled: {args.messages} messages at {rate:,.0f}/s")
        for n in range(args.rounds):
            row = round_(urls["rest"], args.messages, args.publishers, replay)
            rows.append(row)
            print(f"round {n + 1}: " + " | ".join(_line(kind, row[kind], args.messages) for kind in KINDS)
                  + f" | load {os.getloadavg()[0]:.1f}")
    med = {k: {f: statistics.median(r[k][f] for r in rows) for f in ("per_s", "cpu_us")} for k in KINDS}
    for kind in KINDS:
        print(f"median {kind}: {med[kind]['per_s']:,.0f} msg/s, {med[kind]['cpu_us']:.1f} µs CPU/msg")
    print(f"CPU per message, python / raw: {med['python']['cpu_us'] / med['raw']['cpu_us']:.1f}x")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
