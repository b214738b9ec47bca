"""The floor under gRPC fan-out: grpc.aio writing the same bytes to N streams.

No roomchat: a bare grpc.aio server (in a child process) whose one
unary-stream method writes one pre-serialized 150-byte message M times with
`await context.write(...)`, as fast as the stream takes them; a client reads N
such streams at once. It prints the server's CPU per write, which a gRPC
adapter on grpc.aio can not go below on the same machine.

    .venv/bin/python benchmarks/grpc_floor.py                 # 100 streams x 5,000 messages
    .venv/bin/python benchmarks/grpc_floor.py --streams 1000 --messages 500
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from typing import Any

import grpc
import psutil

PAYLOAD = b"\n" + bytes([148]) + b"x" * 148  # a protobuf `string` field 1, 150 bytes in all
METHOD = "/floor.Floor/Stream"


def serve(port_out: Any, messages: int) -> None:
    async def stream(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        for _ in range(messages):
            await context.write(PAYLOAD)

    async def main() -> None:
        server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            "floor.Floor", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}
        )
        server.add_generic_rpc_handlers((handler,))
        port_out.send(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


async def read_all(port: int, streams: int, messages: int) -> None:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(streams)]

    async def one(channel: grpc.aio.Channel) -> None:
        got = 0
        async for _ in channel.unary_stream(METHOD)(b""):
            got += 1
        assert got == messages, got

    await asyncio.gather(*(one(c) for c in channels))
    for channel in channels:
        await channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--messages", type=int, default=5000)
    args = parser.parse_args()
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.Process(target=serve, args=(theirs, args.messages), daemon=True)
    child.start()
    port = ours.recv()
    server = psutil.Process(child.pid)
    before = server.cpu_times()
    start = time.perf_counter()
    asyncio.run(read_all(port, args.streams, args.messages))
    wall = time.perf_counter() - start
    after = server.cpu_times()
    cpu = (after.user + after.system) - (before.user + before.system)
    writes = args.streams * args.messages
    child.terminate()
    child.join()
    print(
        f"{args.streams} streams x {args.messages} messages: {writes / wall:,.0f} writes/s, "
        f"server {cpu / writes * 1e6:.1f} µs CPU per write"
    )


if __name__ == "__main__":
    main()
