"""The home page's room list over HTTP: paged, searchable, and small whatever the number of rooms."""

from __future__ import annotations

import httpx
import pytest

from roomchat.adapters.html.home import before
from tests.support import serve


async def test_the_home_page_stays_small_with_thousands_of_rooms(client: httpx.AsyncClient) -> None:
    async with serve("html") as server:
        for n in range(3000):
            await server.service.submit(f"r{n:04d}", "ann", "hi")
        r = await client.get(server.url("html"))
        assert r.status_code == 200
        assert r.text.count('<li><a href="/room/') == 50
        assert 'href="/?after=r0049"' in r.text
        assert len(r.content) < 16_000
        r = await client.get(server.url("html"), params={"q": "r29", "after": "r2950"})
        assert r.text.count('<li><a href="/room/') == 49 and 'id="next"' not in r.text
        assert 'href="/?q=r29"' in r.text  # back to the first page of the search
        for bad in ({"q": "bad name"}, {"after": "bad!"}):
            r = await client.get(server.url("html"), params=bad)
            assert r.status_code == 422 and "1-64 characters" in r.text


@pytest.mark.parametrize(
    ("prefix", "start"),
    [("-", None), ("a", "_" + "z" * 63), ("a-", "a"), ("room-1", "room-0" + "z" * 58), ("A", "9" + "z" * 63)],
)
def test_a_search_starts_right_before_its_prefix(prefix: str, start: str | None) -> None:
    assert before(prefix) == start
    assert start is None or (start < prefix and len(start) <= 64)
