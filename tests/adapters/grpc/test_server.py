"""The grpc server around the rpcs: health, reflection, TLS, backend down, the command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from roomchat.adapters import AdapterSettings
from roomchat.adapters.grpc import GrpcAdapter
from roomchat.adapters.grpc.generated import message_pb2 as pb
from roomchat.adapters.grpc.generated import message_pb2_grpc as pb_grpc
from roomchat.bootstrap import ServiceSettings, build_service
from roomchat.core import Message
from roomchat.runner import run
from tests.adapters.grpc.client import post, read, room_stub, target
from tests.core.fakes import FakeBackend
from tests.support import roomchat_process, serve


@contextlib.asynccontextmanager
async def serve_over(backend: FakeBackend) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """The grpc adapter alone over a fake backend the test can take down."""
    service = build_service(ServiceSettings(), backend)
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stopping = asyncio.Event()
    adapters = {"grpc": GrpcAdapter(service, AdapterSettings(port=0))}
    task = asyncio.ensure_future(run(service, adapters, lambda _, url: listening.set_result(url), stopping))
    try:
        yield await asyncio.wait_for(listening, 5), stopping
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)


async def health_of(channel: grpc.aio.Channel, service: str = "") -> int:
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service))
    return int(response.status)


async def test_health_is_serving_while_the_backend_answers_and_rpcs_say_unavailable_when_not() -> None:
    backend = FakeBackend()
    async with serve_over(backend) as (url, _), grpc.aio.insecure_channel(target(url)) as channel:
        stub = pb_grpc.RoomStub(channel)
        assert await health_of(channel) == health_pb2.HealthCheckResponse.SERVING
        assert await health_of(channel, "message.Room") == health_pb2.HealthCheckResponse.SERVING
        backend.down = True
        assert await health_of(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as posting:
            await stub.PostToRoom(pb.Message(userId="a", roomId="r", text="lost?"))
        with pytest.raises(grpc.aio.AioRpcError) as streaming:
            await stub.StreamRoom(pb.RoomRequest(roomId="r")).read()
        assert posting.value.code() == streaming.value.code() == grpc.StatusCode.UNAVAILABLE
        backend.down = False
        assert await health_of(channel) == health_pb2.HealthCheckResponse.SERVING
        history = await backend.history("r", 10, None, None)
        assert history == []  # nothing was acknowledged that was not stored


async def test_reflection_lists_the_services_and_describes_message_room() -> None:
    async with serve("grpc") as server, grpc.aio.insecure_channel(target(server.url("grpc"))) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="message.Room"),
        ]
        responses = [r async for r in stub.ServerReflectionInfo(iter(requests))]
        names = {s.name for s in responses[0].list_services_response.service}
        assert names == {"message.Room", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
        [raw] = responses[1].file_descriptor_response.file_descriptor_proto
        file = descriptor_pb2.FileDescriptorProto.FromString(raw)
        assert file.package == "message"
        methods = [m.name for m in file.service[0].method]
        assert methods == ["GetRoom", "PostToRoom", "DeleteRoom", "StreamRoom", "Presence"]


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    async with serve("grpc", tls_cert=str(cert), tls_key=str(key)) as server:
        url = server.url("grpc")
        assert url.startswith("grpcs://127.0.0.1:")
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(target(url), credentials) as channel:
            stub = pb_grpc.RoomStub(channel)
            call = stub.StreamRoom(pb.RoomRequest(roomId="secret"))
            await call.initial_metadata()
            sent = await post(stub, "secret", "over tls")
            assert [m.id for m in await read(call, 1)] == [sent]
            call.cancel()
        async with room_stub(url) as plain:  # a client without TLS gets nowhere
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await plain.GetRoom(pb.RoomRequest(roomId="secret"), timeout=2)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roomchat", *args], capture_output=True, text=True, timeout=20, env=os.environ
    )


def test_roomchat_adapters_lists_grpc() -> None:
    out = run_cli("adapters")
    assert out.returncode == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["grpc"] == ["roomchat", "0.1.0"]  # by column: the spacing depends on the plugins installed


async def test_sigterm_ends_an_open_stream_with_unavailable_and_exits_0() -> None:
    with roomchat_process("--adapter", "grpc", "--port", "grpc=0") as server:
        url = server.urls["grpc"]
        assert url.startswith("grpc://127.0.0.1:")
        async with room_stub(url) as stub:
            call = stub.StreamRoom(pb.RoomRequest(roomId="term"))
            await call.initial_metadata()
            sent = await post(stub, "term", "before the end")
            assert [m.id for m in await read(call, 1)] == [sent]
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await asyncio.wait_for(call.read(), 5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert await asyncio.to_thread(server.proc.wait, 5) == 0
            assert time.monotonic() - started < 5
        assert server.proc.stderr is not None
        assert "Traceback" not in server.proc.stderr.read()


def test_all_adapters_include_grpc() -> None:
    with roomchat_process("--all", "--port", "grpc=0,rest=0,html=0", expect=3) as server:
        assert server.urls["grpc"].startswith("grpc://127.0.0.1:")
        assert server.terminate() == 0


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli("serve", "--adapter", "grpc", "--port", f"grpc={port}")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roomchat: error: grpc"), out.stderr
    assert "in use" in lines[0]


class SlowPublish(FakeBackend):
    """Publishing waits for `gate`: a post the test holds in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.publishing = asyncio.Event()

    async def publish(self, room_id: str, user_id: str, text: str) -> Message:
        self.publishing.set()
        await self.gate.wait()
        return await super().publish(room_id, user_id, text)


async def test_a_post_in_flight_when_stopping_finishes_and_new_calls_are_refused() -> None:
    backend = SlowPublish()
    async with serve_over(backend) as (url, stopping), room_stub(url) as stub, room_stub(url) as late:
        posting = asyncio.ensure_future(stub.PostToRoom(pb.Message(userId="a", roomId="r", text="in flight")))
        await asyncio.wait_for(backend.publishing.wait(), 5)
        stopping.set()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            for _ in range(100):  # until the server has begun to stop
                await late.GetRoom(pb.RoomRequest(roomId="r"), timeout=1)
                await asyncio.sleep(0.01)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        backend.gate.set()
        response = await asyncio.wait_for(posting, 5)
        assert response.success and json.loads(response.data)["text"] == "in flight"


async def test_a_request_over_64_kib_is_resource_exhausted() -> None:
    async with serve("grpc") as server, room_stub(server.url("grpc")) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.PostToRoom(pb.Message(userId="a", roomId="r", text="x" * (65 * 1024)))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_grpc_option_is_a_bounded_whole_number_and_an_unknown_one_is_refused() -> None:
    def options(key: str, value: str) -> dict[str, int]:
        adapter = GrpcAdapter(build_service(ServiceSettings()), AdapterSettings(options={key: value}))
        return dict(adapter.options())

    assert options("grpc.max_receive_message_length", "1024")["grpc.max_receive_message_length"] == 1024
    for bad in ("-5", "abc", "9" * 4301):  # the last is bounded before `int` reads it
        with pytest.raises(
            ValueError, match=r"grpc\.keepalive_time_ms must be a whole number from 0 to 2147483647"
        ):
            options("grpc.keepalive_time_ms", bad)
    with pytest.raises(ValueError, match=r"grpc\.x is not a gRPC option roomchat reads"):
        options("grpc.x", "1")
