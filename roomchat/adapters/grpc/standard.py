"""The standard services, `grpc.health.v1.Health` and server reflection: grpcio's servicers on grpclib.

grpcio-health-checking and grpcio-reflection keep the logic (statuses and
watchers; descriptor lookups); `Call` gives them the two things they use of a
grpc.aio call over a grpclib stream. grpclib's own health and reflection
modules are not used: they register the same protobuf symbols under other
file names, which one process cannot hold beside grpcio's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Stream

from roomchat.adapters.grpc import codec
from roomchat.adapters.grpc.servicer import SERVICE
from roomchat.core import Manager

HEALTH_INTERVAL = 1.0  # seconds between backend checks for Health/Watch
HEALTH_SERVICE = health.SERVICE_NAME
REFLECTION_SERVICE = reflection.SERVICE_NAME


class Call:
    """What grpcio's aio servicers use of their call: `write` and `abort`."""

    def __init__(self, stream: Stream[Any, Any]) -> None:
        self._stream = stream

    async def write(self, message: Any) -> None:
        await self._stream.send_message(message)

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise GRPCError(Status(code.value[0]), details or None)


class Health(health.aio.HealthServicer):  # type: ignore[name-defined,misc]
    """SERVING while the backend answers, for the server ("") and message.Room."""

    def __init__(self, manager: Manager, max_request: int) -> None:
        super().__init__()
        self._manager = manager
        self._max_request = max_request

    def __mapping__(self) -> dict[str, Handler]:
        request, response = health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
        return {
            f"/{HEALTH_SERVICE}/Check": Handler(self._check, Cardinality.UNARY_UNARY, request, response),
            f"/{HEALTH_SERVICE}/Watch": Handler(self._watch, Cardinality.UNARY_STREAM, request, response),
        }

    async def refresh(self) -> None:
        try:
            async with asyncio.timeout(HEALTH_INTERVAL):  # not wait_for: on 3.11 it can swallow a cancel
                ok = await self._manager.healthy()
        except Exception:
            ok = False
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            await self.set(name, status)

    async def watch_backend(self, stopping: asyncio.Event) -> None:
        """Keep the status fresh for Watch callers until the server stops."""
        while not stopping.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEALTH_INTERVAL):
                    await stopping.wait()

    async def _check(self, stream: Stream[Any, Any]) -> None:
        data = await codec.read_request(stream, self._max_request)
        request = codec.decode(data, health_pb2.HealthCheckRequest)
        if not self._gracefully_shutting_down:
            await self.refresh()  # answer from the backend's state now, not a second ago
        await stream.send_message(await self.Check(request, Call(stream)))

    async def _watch(self, stream: Stream[Any, Any]) -> None:
        data = await codec.read_request(stream, self._max_request)
        request = codec.decode(data, health_pb2.HealthCheckRequest)
        await self.Watch(request, Call(stream))


class Reflection(reflection.aio.ReflectionServicer):  # type: ignore[name-defined,misc]
    """`grpc.reflection.v1alpha.ServerReflection` for the given services."""

    def __init__(self, services: list[str], max_request: int) -> None:
        super().__init__(services)
        self._max_request = max_request

    def __mapping__(self) -> dict[str, Handler]:
        request, response = reflection_pb2.ServerReflectionRequest, reflection_pb2.ServerReflectionResponse
        return {
            f"/{REFLECTION_SERVICE}/ServerReflectionInfo": Handler(
                self._info, Cardinality.STREAM_STREAM, request, response
            ),
        }

    async def _info(self, stream: Stream[Any, Any]) -> None:
        async for response in self.ServerReflectionInfo(self._requests(stream), Call(stream)):
            await stream.send_message(response)

    async def _requests(
        self, stream: Stream[Any, Any]
    ) -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        while (data := await codec.read_message(stream, self._max_request)) is not None:
            yield codec.decode(data, reflection_pb2.ServerReflectionRequest)
