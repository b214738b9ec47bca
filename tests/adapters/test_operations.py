"""/healthz, /readyz and /metrics on every HTTP adapter, over real servers."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from roomchat.adapters import Adapter, AdapterSettings, Ready
from roomchat.adapters.registry import available
from roomchat.bootstrap import ServiceSettings, build_service
from roomchat.runner import run
from tests.adapters.grpc.client import post as grpc_post
from tests.adapters.grpc.client import room_stub
from tests.support import serve, stream
from tests.ws_client import ws_connect

POST_PATH = {"rest": "/api/room/{}", "html": "/room/{}"}
STREAM_PATH = {"rest": "/api/stream/{}", "html": "/stream/{}"}
TRANSPORT = {"rest": "sse", "html": "html"}


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient, base: str) -> Samples:
    """Every sample of /metrics, parsed as Prometheus does: (name, labels) → value."""
    r = await client.get(f"{base}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }


@pytest.mark.parametrize("adapter", ["rest", "html"])
async def test_every_http_adapter_answers_health_readiness_and_metrics(
    adapter: str, client: httpx.AsyncClient
) -> None:
    async with serve(adapter) as server:
        base = server.url(adapter)
        health = await client.get(f"{base}/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok", "backend": "ok"})
        ready = await client.get(f"{base}/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        async with stream(client, base + STREAM_PATH[adapter].format("lobby")) as events:
            posted = await client.post(
                base + POST_PATH[adapter].format("lobby"), json={"userId": "ann", "text": "hi"}
            )
            assert posted.status_code == 201
            assert [e.json()["text"] for e in await events.messages(1)] == ["hi"]
            seen = await scrape(client, base)
        assert seen[("roomchat_listeners", (("transport", TRANSPORT[adapter]),))] == 1
        assert seen[("roomchat_post_seconds_count", ())] == 1
        assert seen[("roomchat_post_seconds_bucket", (("le", "+Inf"),))] == 1
        assert seen[("roomchat_delivery_lag_seconds_count", ())] == 1
        assert seen[("roomchat_backend_seconds_count", ())] >= 1  # the post's store, /healthz's ping
        assert seen[("roomchat_connections", (("transport", "http"),))] >= 1
        for standard in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
            assert seen[(standard, ())] > 0, standard
        assert any(name == "python_info" for name, _ in seen)


async def test_websocket_and_grpc_connections_are_counted(client: httpx.AsyncClient) -> None:
    async with serve("rest", "grpc") as server:
        base = server.url("rest")
        # The gauge is per process, and this test's server shares the process with earlier
        # tests' servers: count from what it reads now.
        before = {t: await _connections(client, base, t) for t in ("ws", "grpc")}
        async with ws_connect(base), room_stub(server.url("grpc")) as stub:
            await grpc_post(stub, "lobby", "hello")  # the channel is connected once a call is answered
            seen = await scrape(client, base)
            assert seen[("roomchat_connections", (("transport", "ws"),))] == before["ws"] + 1
            assert seen[("roomchat_connections", (("transport", "grpc"),))] == before["grpc"] + 1
        for transport in ("ws", "grpc"):
            await until(lambda t=transport: _connections(client, base, t), before[transport])


async def _connections(client: httpx.AsyncClient, base: str, transport: str) -> float:
    return (await scrape(client, base))[("roomchat_connections", (("transport", transport),))]


async def until(read: Any, wanted: float, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while (got := await read()) != wanted:
        assert asyncio.get_running_loop().time() < deadline, f"still {got}, not {wanted}"
        await asyncio.sleep(0.02)


class _HeldBack:
    """An adapter that says it listens only when the test lets it: the server is still starting."""

    name = "held"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def serve(self, ready: Ready, stopping: asyncio.Event) -> None:
        await self.release.wait()
        ready("held://")
        await stopping.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_readyz_is_503_until_every_adapter_listens(client: httpx.AsyncClient) -> None:
    service = build_service(ServiceSettings())
    port = _free_port()
    held = _HeldBack()
    adapters: dict[str, Adapter] = {
        "rest": available()["rest"].load()(service, AdapterSettings(port=port)),
        "held": held,
    }
    stopping = asyncio.Event()
    task = asyncio.ensure_future(run(service, adapters, lambda name, url: None, stopping))
    base = f"http://127.0.0.1:{port}"
    try:
        health = await _first_answer(client, f"{base}/healthz")
        assert health.status_code == 200  # alive and its backend answers...
        starting = await client.get(f"{base}/readyz")
        assert (starting.status_code, starting.json()) == (503, {"status": "not ready"})  # ...not ready yet
        held.release.set()
        await until(lambda: _status(client, f"{base}/readyz"), 200)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


async def _status(client: httpx.AsyncClient, url: str) -> int:
    return (await client.get(url)).status_code


async def _first_answer(client: httpx.AsyncClient, url: str, within: float = 10.0) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            return await client.get(url)
        except httpx.ConnectError:
            assert asyncio.get_running_loop().time() < deadline, f"{url} never answered"
            await asyncio.sleep(0.02)


async def test_a_closing_service_is_not_ready() -> None:
    service = build_service(ServiceSettings())
    await service.start()
    assert not await service.ready()  # starting
    service.serving()
    assert await service.ready()
    await service.close()
    assert not await service.ready()  # draining
