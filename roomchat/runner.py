"""Runs chosen adapters over one room service in one event loop; owns the signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Mapping

from roomchat.adapters import Adapter, CannotListen
from roomchat.core import RoomService

DRAIN = 4.0  # seconds adapters get to end their streams once stopping


class StartupError(Exception):
    """A clear, one-line reason the server could not start."""


log = logging.getLogger("roomchat")


def announce(name: str, url: str) -> None:
    print(f"roomchat: {name} listening on {url}", flush=True)
    log.debug("%s listening on %s", name, url)  # the same, in the log's format (--log-json)


async def run(
    service: RoomService,
    adapters: Mapping[str, Adapter],
    ready: Callable[[str, str], None] = announce,
    stopping: asyncio.Event | None = None,
    reload: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or `stopping`), then end streams and return.

    `ready(name, url)` is called for every adapter once all of them have bound;
    `reload()` on each SIGHUP (without one, SIGHUP is logged and changes nothing).
    Raises one StartupError naming every adapter that failed.
    """
    stopping = stopping or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, reload or _nothing_to_reload)
    try:
        await service.start()
        announcements = _Announcements(list(adapters), ready)
        tasks = {
            loop.create_task(adapter.serve(announcements.ready_as(name), stopping), name=name): name
            for name, adapter in adapters.items()
        }
        stop = loop.create_task(stopping.wait())
        done, _ = await asyncio.wait({stop, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        # An adapter that returned before anyone asked it to stop has failed.
        ended_early = set() if stopping.is_set() else done - {stop}
        stopping.set()
        await service.close()
        _, late = await asyncio.wait(tasks, timeout=DRAIN) if tasks else (set(), set())
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1)
        stop.cancel()
        # Every task's exception is read here, so asyncio never logs "never retrieved".
        failures = [_failure(tasks[task], task, task in ended_early) for task in tasks]
        reasons = [reason for reason in failures if reason is not None]
        if reasons:
            raise StartupError("; ".join(reasons))
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def _nothing_to_reload() -> None:
    log.warning("SIGHUP: nothing to reload; the settings are unchanged")


class _Announcements:
    """Holds each adapter's `listening` line until every adapter has bound, so a
    server that then fails to start never said it was listening."""

    def __init__(self, names: list[str], ready: Callable[[str, str], None]) -> None:
        self._names = names
        self._ready = ready
        self._urls: dict[str, str] = {}

    def ready_as(self, name: str) -> Callable[[str], None]:
        def ready(url: str) -> None:
            if name in self._urls:
                return  # once per adapter
            self._urls[name] = url
            if len(self._urls) == len(self._names):
                for each in self._names:
                    self._ready(each, self._urls[each])

        return ready


def _failure(name: str, task: asyncio.Task[None], ended_early: bool) -> str | None:
    if not task.done() or task.cancelled():
        return None
    exc = task.exception()
    if isinstance(exc, CannotListen):
        return f"{name} {exc.strerror}"
    if isinstance(exc, OSError):
        return f"{name} cannot listen: {exc.strerror or exc}"
    if exc is not None:
        return f"{name} failed: {exc}"
    if ended_early:  # returning promptly once `stopping` is set is what adapters should do
        return f"{name} stopped by itself"
    return None


def _announce_all(count: int, listening: Callable[[], None] | None) -> Callable[[str, str], None]:
    ready: set[str] = set()

    def each(name: str, url: str) -> None:
        announce(name, url)
        ready.add(name)
        if len(ready) == count and listening is not None:
            listening()

    return each


def run_forever(
    service: RoomService,
    adapters: Mapping[str, Adapter],
    listening: Callable[[], None] | None = None,
    reload: Callable[[], None] | None = None,
) -> None:
    """Run in a fresh event loop (uvloop where installed); `listening()` once every adapter is;
    `reload()` on SIGHUP."""
    try:
        import uvloop

        runner: Callable[..., None] = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(run(service, adapters, _announce_all(len(adapters), listening), reload=reload))
    sys.stdout.flush()
