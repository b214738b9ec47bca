from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

pytest.register_assert_rewrite("roomchat.testing")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as c:
        yield c
