"""The one backend suite (roomchat.testing.backend_suite), on every built-in backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from roomchat.testing.backend_suite import BackendCase, BackendSuite


@pytest.fixture(params=["memory", "sqlite", "sqlite-full", "redis"])
def backend_case(request: pytest.FixtureRequest, tmp_path: Path) -> BackendCase:
    if request.param == "memory":
        return BackendCase("memory")
    if request.param.startswith("sqlite"):
        sync = "?sync=full" if request.param == "sqlite-full" else ""
        return BackendCase(f"sqlite:///{tmp_path}/chat.db{sync}", survives_restart=True)
    redis = request.getfixturevalue("redis")
    return BackendCase(redis.url, survives_restart=True, cut=redis.kill, restore=redis.start)


class TestBuiltInBackends(BackendSuite):
    pass
