"""The one backend suite (roomchat.testing.backend_suite), on every built-in backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from roomchat.backends.memory import MemoryBackend
from roomchat.backends.sqlite import SqliteBackend
from roomchat.testing.backend_suite import BackendCase, BackendSuite


@pytest.fixture(params=["memory", "sqlite", "sqlite-full", "redis"])
def backend_case(request: pytest.FixtureRequest, tmp_path: Path) -> BackendCase:
    if request.param == "memory":
        return BackendCase("memory", clocked=lambda s, clock: MemoryBackend("memory", s, clock=clock))
    if request.param.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/chat.db" + ("?sync=full" if request.param == "sqlite-full" else "")
        return BackendCase(
            url,
            survives_restart=True,
            clocked=lambda settings, clock: SqliteBackend(url, settings, clock=clock),
        )
    redis = request.getfixturevalue("redis")
    return BackendCase(redis.url, survives_restart=True, cut=redis.kill, restore=redis.start)


class TestBuiltInBackends(BackendSuite):
    pass
