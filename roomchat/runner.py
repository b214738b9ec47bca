"""Runs chosen adapters over one room service in one event loop; owns the signals."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from roomchat.adapters import Adapter
from roomchat.core import RoomService

DRAIN = 4.0  # seconds adapters get to end their streams once stopping


class StartupError(Exception):
    """A clear, one-line reason the server could not start."""


def announce(name: str, url: str) -> None:
    print(f"roomchat: {name} listening on {url}", flush=True)


async def run(
    service: RoomService,
    adapters: Mapping[str, Adapter],
    ready: Callable[[str, str], None] = announce,
    stopping: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or `stopping`), then end streams and return."""
    stopping = stopping or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await service.start()
        tasks = {
            loop.create_task(adapter.serve(_ready_as(name, ready), stopping), name=name): name
            for name, adapter in adapters.items()
        }
        stop = loop.create_task(stopping.wait())
        done, _ = await asyncio.wait({stop, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        failure = _first_failure(done, tasks, stopped=stopping.is_set())
        stopping.set()
        await service.close()
        _, late = await asyncio.wait(tasks, timeout=DRAIN) if tasks else (set(), set())
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1)
        if failure is not None:
            raise failure
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _announce_all(count: int, listening: Callable[[], None] | None) -> Callable[[str, str], None]:
    ready: set[str] = set()

    def each(name: str, url: str) -> None:
        announce(name, url)
        ready.add(name)
        if len(ready) == count and listening is not None:
            listening()

    return each


def _ready_as(name: str, ready: Callable[[str, str], None]) -> Callable[[str], None]:
    return lambda url: ready(name, url)


def _first_failure(
    done: set[asyncio.Task[Any]], tasks: dict[asyncio.Task[None], str], stopped: bool
) -> StartupError | None:
    for task in done:
        if task not in tasks or task.cancelled():
            continue
        exc = task.exception()
        name = tasks[task]
        if isinstance(exc, OSError):
            return StartupError(f"{name} cannot listen: {exc.strerror or exc}")
        if exc is not None:
            return StartupError(f"{name} failed: {exc}")
        if not stopped:  # returning promptly once `stopping` is set is what adapters should do
            return StartupError(f"{name} stopped by itself")
    return None


def run_forever(
    service: RoomService, adapters: Mapping[str, Adapter], listening: Callable[[], None] | None = None
) -> None:
    """Run in a fresh event loop (uvloop where installed); `listening()` once every adapter is."""
    try:
        import uvloop

        runner: Callable[..., None] = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(run(service, adapters, _announce_all(len(adapters), listening)))
    sys.stdout.flush()
