"""The gRPC bench client: `message.Room/StreamRoom` listeners, `PostToRoom` posts.

Raw bytes in and out (no deserializer): the marker is found in each message's
bytes, where the text field sits as is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc

from roomchat.adapters.grpc.generated import message_pb2
from roomchat.bench.clients import Publisher, StalledStream, Stream, Target
from roomchat.bench.tally import Sink

_STREAM = "/message.Room/StreamRoom"
_POST = "/message.Room/PostToRoom"


def _address(target: Target) -> str:
    host, port = target.host_port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _metadata(target: Target) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {target.token}"),) if target.token else ()


class _GrpcStream:
    def __init__(self, call: Any, reader: asyncio.Task[None]) -> None:
        self._call = call
        self._reader = reader

    def close(self) -> None:
        self._call.cancel()
        self._reader.cancel()


class _GrpcStalled:
    """A stream whose messages are never read until `drain`: grpc's flow control holds them."""

    def __init__(self, channel: grpc.aio.Channel, call: Any) -> None:
        self._channel = channel
        self._call = call

    async def drain(self, timeout: float) -> bool:
        async def read_all() -> bool:
            try:
                async for _ in self._call:
                    pass
            except grpc.aio.AioRpcError as exc:
                return exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            return False

        try:
            return await asyncio.wait_for(read_all(), timeout)
        except TimeoutError:
            return False
        finally:
            await self._channel.close(None)


class _GrpcPublisher:
    def __init__(self, target: Target) -> None:
        self._channel = grpc.aio.insecure_channel(_address(target))
        self._post = self._channel.unary_unary(_POST, None, None)
        self._target = target

    async def post(self, text: str) -> None:
        t = self._target
        data = message_pb2.Message(userId=t.user, roomId=t.room, text=text).SerializeToString()
        await self._post(data, metadata=_metadata(t))

    async def close(self) -> None:
        await self._channel.close(None)


class GrpcClient:
    """One channel (one HTTP/2 connection) per listener, as separate clients would have."""

    name = "grpc"
    server_adapters: tuple[str, ...] = ("grpc",)
    uvloop = False  # grpc.aio runs on the standard event loop

    async def _open(self, target: Target) -> tuple[grpc.aio.Channel, Any]:
        channel = grpc.aio.insecure_channel(_address(target))
        request = message_pb2.RoomRequest(userId=target.user, roomId=target.room).SerializeToString()
        call = channel.unary_stream(_STREAM, None, None)(request, metadata=_metadata(target))
        await call.initial_metadata()  # sent once the server registered the listener
        return channel, call

    async def listen(self, target: Target, sink: Sink, ended: Callable[[], None]) -> Stream:
        channel, call = await self._open(target)

        async def read() -> None:
            try:
                async for data in call:
                    sink.feed(data + b"\n", time.monotonic_ns())
            except grpc.aio.AioRpcError as exc:
                if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                    sink.lagged = True
                if exc.code() is not grpc.StatusCode.CANCELLED:
                    ended()
            finally:
                await channel.close(None)

        return _GrpcStream(call, asyncio.ensure_future(read()))

    async def stalled(self, target: Target) -> StalledStream:
        channel, call = await self._open(target)
        return _GrpcStalled(channel, call)

    async def publisher(self, target: Target) -> Publisher:
        return _GrpcPublisher(target)
