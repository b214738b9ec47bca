from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.redis_server import RedisServer, redis_server


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server of this test's own (never the system one)."""
    with redis_server(tmp_path) as server:
        yield server
