"""gRPC fan-out: deliveries per second and server CPU per delivery.

Starts `roomchat serve --adapter grpc` in a subprocess, opens N StreamRoom
listeners on one room from client processes, posts M messages over gRPC and
times until every listener has every message.

    .venv/bin/python benchmarks/grpc_fanout.py                 # 100 and 1,000 listeners
    .venv/bin/python benchmarks/grpc_fanout.py --listeners 500 --messages 300 --clients 2

Each run takes a few seconds; the figures depend on the machine and on what
else runs on it (server and clients share its cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time

import grpc
import psutil

ROOM = "bench"
PER_CHANNEL = 100  # streams per HTTP/2 connection, as separate client machines would spread them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--messages", type=int, default=0, help="per run (default: 200,000 deliveries)")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--size", type=int, default=100, help="characters per text")
    parser.add_argument("--client", nargs=3, metavar=("TARGET", "N", "M"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        target, listeners, messages = args.client
        _run_loop(_client(target, int(listeners), int(messages)))
        return
    print(f"{'listeners':>9} {'messages':>8} {'deliveries/s':>12} {'server CPU/delivery':>19} {'seconds':>7}")
    for listeners in args.listeners:
        messages = args.messages or max(50, 200_000 // listeners)
        result = _bench(listeners, messages, args.clients, args.size)
        print(
            f"{listeners:>9} {messages:>8} {result['deliveries_per_s']:>12,.0f}"
            f" {result['server_us_per_delivery']:>16.1f} µs {result['seconds']:>7.2f}",
            flush=True,
        )


def _bench(listeners: int, messages: int, clients: int, size: int) -> dict[str, float]:
    server = subprocess.Popen(
        [sys.executable, "-m", "roomchat", "serve", "--adapter", "grpc", "--port", "grpc=0",
         "--buffer", str(messages + 100), "--history", str(messages + 100), "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: list[subprocess.Popen[str]] = []
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if " listening on " not in line:
            raise SystemExit(f"the server did not start: {line!r}")
        target = line.strip().rpartition("grpc://")[2]
        shares = [listeners // clients + (1 if i < listeners % clients else 0) for i in range(clients)]
        client = [sys.executable, __file__, "--client", target]
        commands = [[*client, str(n), str(messages)] for n in shares if n]
        workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for command in commands]
        for worker in workers:  # each says "ready" once all its streams are open
            assert worker.stdout is not None
            if worker.stdout.readline().strip() != "ready":
                raise SystemExit("a client process failed")
        cpu = psutil.Process(server.pid)
        before = cpu.cpu_times()
        started = time.monotonic()
        _run_loop(_publish(target, messages, size))
        finished = 0.0
        for worker in workers:
            assert worker.stdout is not None
            report = json.loads(worker.stdout.readline())
            finished = max(finished, report["finished"])
        after = cpu.cpu_times()
        deliveries = listeners * messages
        seconds = finished - started
        server_cpu = (after.user - before.user) + (after.system - before.system)
        return {
            "deliveries_per_s": deliveries / seconds,
            "server_us_per_delivery": server_cpu / deliveries * 1e6,
            "seconds": seconds,
        }
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
        server.send_signal(signal.SIGTERM)
        server.wait(10)


async def _publish(target: str, messages: int, size: int) -> None:
    from roomchat.adapters.grpc.generated import message_pb2 as pb

    text = "x" * size
    async with grpc.aio.insecure_channel(target) as channel:
        post = channel.unary_unary("/message.Room/PostToRoom")
        requests = [pb.Message(userId="bench", roomId=ROOM, text=text).SerializeToString()] * messages
        window = 8  # posts in flight

        async def lane(lane_requests: list[bytes]) -> None:
            for request in lane_requests:
                await post(request)

        await asyncio.gather(*(lane(requests[i::window]) for i in range(window)))


async def _client(target: str, listeners: int, messages: int) -> None:
    from roomchat.adapters.grpc.generated import message_pb2 as pb

    request = pb.RoomRequest(roomId=ROOM).SerializeToString()
    channels = [grpc.aio.insecure_channel(target) for _ in range(math.ceil(listeners / PER_CHANNEL))]
    streams = [channel.unary_stream("/message.Room/StreamRoom") for channel in channels]
    calls = [streams[i // PER_CHANNEL](request) for i in range(listeners)]
    await asyncio.gather(*(call.initial_metadata() for call in calls))
    print("ready", flush=True)
    finished = 0.0

    async def drain(call: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
        nonlocal finished
        seen = 0
        async for _ in call:  # raw bytes: no parse, the cheapest a Python client gets
            seen += 1
            if seen == messages:
                break
        finished = max(finished, time.monotonic())
        call.cancel()

    await asyncio.gather(*(drain(call) for call in calls))
    print(json.dumps({"finished": finished}), flush=True)
    for channel in channels:
        await channel.close()


def _run_loop(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover
        asyncio.run(coro)  # type: ignore[arg-type]


if __name__ == "__main__":
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    main()
