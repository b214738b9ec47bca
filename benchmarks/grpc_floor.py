"""The floor under gRPC fan-out: Python gRPC servers writing the same bytes to N streams.

No roomchat: each variant is a bare server (in a child process of its own)
whose one unary-stream method writes one pre-serialized 150-byte message M
times, as fast as the stream takes them; a grpc.aio client in this process
reads N such streams at once, one channel (one connection) each. It prints,
for each variant, the server's CPU per write and writes (deliveries) per
second. A gRPC adapter built on a variant cannot go below its floor.

Variants (`--variants`, default all), alternated run by run so that a busy
machine slows each alike; the table gives the median of `--runs`:

  aio             grpc.aio, default options, standard asyncio loop (today's adapter)
  aio-uvloop      the same under uvloop (the loop `roomchat serve` runs)
  aio-knobs       grpc.aio, no compression per call, max_concurrent_streams, larger
                  HTTP/2 windows (server and client lookahead), bigger write buffer
  aio-poll        grpc.aio with GRPC_POLL_STRATEGY=poll instead of epoll1
  sync            the synchronous grpc.server, one thread per stream yielding the bytes
  grpclib         grpclib (pure Python on h2), standard loop
  grpclib-uvloop  grpclib under uvloop
  grpclib-batch   grpclib under uvloop, BATCH pre-framed messages per HTTP/2 DATA frame
                  (what an adapter could do with the messages a listener has queued;
                  grpclib's own API sends one message per call, so this uses its
                  stream's `send_data`)
  grpclib-direct  grpclib under uvloop, one message per DATA frame whose header is written by
                  hand, h2's windows debited (roomchat's fast path with no batching: the
                  adapter's own floor per write)

The grpclib variants need the `bench` extra (`pip install -e '.[dev,bench]'`).

    .venv/bin/python benchmarks/grpc_floor.py                      # 100 and 1,000 streams, 3 runs
    .venv/bin/python benchmarks/grpc_floor.py --streams 100 --variants aio,sync --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import psutil

PAYLOAD = b"\n" + bytes([148]) + b"x" * 148  # a protobuf `string` field 1, 150 bytes in all
METHOD = "/floor.Floor/Stream"
WINDOW = 4 * 1024 * 1024  # the HTTP/2 window of the knobs variant, both ways
KNOBS: list[tuple[str, Any]] = [
    ("grpc.max_concurrent_streams", 100_000),
    ("grpc.http2.lookahead_bytes", WINDOW),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.http2.write_buffer_size", WINDOW),
    ("grpc.default_compression_algorithm", 0),
]
CLIENT_KNOBS: list[tuple[str, Any]] = [("grpc.http2.lookahead_bytes", WINDOW), ("grpc.http2.bdp_probe", 0)]


# -- servers (each runs in a spawned child) -----------------------------------------------


def _aio(port_out: Any, messages: int, options: list[tuple[str, Any]], knobs: bool) -> Callable[[], Any]:
    async def stream(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        if knobs:
            context.set_compression(grpc.Compression.NoCompression)
        write = context.write
        for _ in range(messages):
            await write(PAYLOAD)

    async def main() -> None:
        server = grpc.aio.server(options=options)
        handler = grpc.method_handlers_generic_handler(
            "floor.Floor", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}
        )
        server.add_generic_rpc_handlers((handler,))
        port_out.send(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()

    return main


def _sync(port_out: Any, messages: int, streams: int) -> None:
    def stream(request: bytes, context: grpc.ServicerContext) -> Any:
        for _ in range(messages):  # a real adapter would drain its listener here, in batches
            yield PAYLOAD

    server = grpc.server(
        ThreadPoolExecutor(max_workers=streams + 8), maximum_concurrent_rpcs=None, options=KNOBS[:1]
    )
    handler = grpc.method_handlers_generic_handler(
        "floor.Floor", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}
    )
    server.add_generic_rpc_handlers((handler,))
    port_out.send(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    server.wait_for_termination()


BATCH = 8  # messages per write in grpclib-batch


async def _direct_writes(h2_stream: Any, messages: int) -> None:
    """One DATA frame per message, its header written by hand and h2's windows debited,
    as roomchat's fast path does (roomchat.adapters.grpc.writer.Direct), without batching."""
    framed = b"\x00" + len(PAYLOAD).to_bytes(4, "big") + PAYLOAD
    size = len(framed)
    frame = size.to_bytes(3, "big") + b"\x00\x00" + h2_stream.id.to_bytes(4, "big") + framed
    h2, transport, ready = h2_stream._h2_connection, h2_stream._transport, h2_stream.connection.write_ready
    state = h2.streams[h2_stream.id]
    sent = 0
    while sent < messages:
        if not ready.is_set():
            await ready.wait()
            continue
        if min(h2.outbound_flow_control_window, state.outbound_flow_control_window) < size:
            h2_stream.window_updated.clear()
            await h2_stream.window_updated.wait()
            continue
        h2.outbound_flow_control_window -= size
        state.outbound_flow_control_window -= size
        transport.write(frame)
        sent += 1


def _grpclib(port_out: Any, messages: int, batch: int = 1, direct: bool = False) -> Callable[[], Any]:
    from grpclib.const import Cardinality, Handler
    from grpclib.encoding.base import CodecBase
    from grpclib.server import Server, Stream

    class Raw(CodecBase):
        """Bytes in, bytes out: the message is serialized once, before the server sees it."""

        __content_subtype__ = "proto"

        def encode(self, message: Any, message_type: Any) -> bytes:
            return message  # type: ignore[no-any-return]

        def decode(self, data: bytes, message_type: Any) -> Any:
            return data

    class Floor:
        async def stream(self, stream: Stream[bytes, bytes]) -> None:
            await stream.recv_message()
            if direct:
                await stream.send_initial_metadata()
                await _direct_writes(stream._stream, messages)
                return
            if batch > 1:  # the gRPC framing (flag, length) done once, the bytes shared
                await stream.send_initial_metadata()
                framed = (b"\x00" + len(PAYLOAD).to_bytes(4, "big") + PAYLOAD) * batch
                send_data = stream._stream.send_data
                for _ in range(messages // batch):
                    await send_data(framed)
                return
            send = stream.send_message
            for _ in range(messages):
                await send(PAYLOAD)

        def __mapping__(self) -> dict[str, Handler]:
            return {METHOD: Handler(self.stream, Cardinality.UNARY_STREAM, bytes, bytes)}

    async def main() -> None:
        server = Server([Floor()], codec=Raw())
        await server.start("127.0.0.1", 0)
        port_out.send(server._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await server.wait_closed()

    return main


def serve(variant: str, port_out: Any, messages: int, streams: int) -> None:
    """The child: one variant's server, until terminated."""
    if variant == "sync":
        _sync(port_out, messages, streams)
        return
    if variant.startswith("grpclib"):
        batch = BATCH if variant == "grpclib-batch" else 1
        main = _grpclib(port_out, messages, batch, direct=variant == "grpclib-direct")
    else:
        knobs = variant == "aio-knobs"
        main = _aio(port_out, messages, KNOBS if knobs else [], knobs)
    if variant.endswith(("uvloop", "batch", "direct")):
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


VARIANTS = (
    "aio", "aio-uvloop", "aio-knobs", "aio-poll", "sync", "grpclib", "grpclib-uvloop", "grpclib-batch",
    "grpclib-direct",
)  # fmt: skip


# -- the client and one measurement -------------------------------------------------------


async def read_all(port: int, streams: int, messages: int, options: list[tuple[str, Any]]) -> None:
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(streams)]

    async def one(channel: grpc.aio.Channel) -> None:
        got = 0
        async for _ in channel.unary_stream(METHOD)(b""):
            got += 1
        assert got == messages, got

    await asyncio.gather(*(one(c) for c in channels))
    for channel in channels:
        await channel.close()


def measure(variant: str, streams: int, messages: int) -> tuple[float, float]:
    """(server µs of CPU per write, writes per second) for one run."""
    spawn = multiprocessing.get_context("spawn")  # a clean grpc in each child, env read at import
    ours, theirs = spawn.Pipe()
    env = os.environ.get("GRPC_POLL_STRATEGY")
    if variant == "aio-poll":
        os.environ["GRPC_POLL_STRATEGY"] = "poll"
    try:
        child = spawn.Process(target=serve, args=(variant, theirs, messages, streams), daemon=True)
        child.start()
    finally:
        if env is None:
            os.environ.pop("GRPC_POLL_STRATEGY", None)
        else:
            os.environ["GRPC_POLL_STRATEGY"] = env
    try:
        port = ours.recv()
        server = psutil.Process(child.pid)
        before = server.cpu_times()
        start = time.perf_counter()
        options = CLIENT_KNOBS if variant == "aio-knobs" else []
        asyncio.run(read_all(port, streams, messages, options))
        wall = time.perf_counter() - start
        after = server.cpu_times()
    finally:
        child.terminate()
        child.join()
    cpu = (after.user + after.system) - (before.user + before.system)
    writes = streams * messages
    return cpu / writes * 1e6, writes / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="100,1000", help="comma-separated stream counts")
    parser.add_argument("--writes", type=int, default=200_000, help="writes per run, split over the streams")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    rows = []
    for streams in (int(n) for n in args.streams.split(",")):
        messages = max(BATCH, args.writes // streams // BATCH * BATCH)
        results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
        for run in range(args.runs):
            order = variants if run % 2 == 0 else variants[::-1]  # alternate, so drift hits all alike
            for variant in order:
                results[variant].append(measure(variant, streams, messages))
                cpu, rate = results[variant][-1]
                print(f"  run {run + 1}: {variant:<15} {streams:>5} streams  {cpu:6.1f} µs  {rate:9,.0f}/s")
        for variant in variants:
            cpus = [c for c, _ in results[variant]]
            rates = [r for _, r in results[variant]]
            rows.append(
                (variant, streams, statistics.median(cpus), min(cpus), max(cpus), statistics.median(rates))
            )
    print(f"\nmedian of {args.runs} alternating runs, {args.writes:,} writes each:\n")
    print("| server | streams | server CPU per write (median, range) | writes/s (median) |")
    print("| --- | --- | --- | --- |")
    for variant, streams, cpu, low, high, rate in rows:
        print(f"| {variant} | {streams:,} | {cpu:.1f} µs ({low:.1f} to {high:.1f}) | {rate:,.0f} |")


if __name__ == "__main__":
    main()
