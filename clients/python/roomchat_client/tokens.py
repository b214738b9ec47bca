"""Where a client's token comes from: a string, or a function (plain or async) asked again on expiry."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

TokenSource = str | Callable[[], str | Awaitable[str]] | None


class Tokens:
    """Holds the current token; `refresh` asks the source for a new one, once for a burst of expiries."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self._current: str | None = source if isinstance(source, str) else None
        self.generation = 0  # bumped by every refresh

    @property
    def refreshable(self) -> bool:
        return callable(self._source)

    async def current(self) -> str | None:
        if self._current is None and callable(self._source):
            await self.refresh()
        return self._current

    async def refresh(self, seen: int | None = None) -> bool:
        """Ask for a new token unless it changed since generation `seen`; whether there is a new one."""
        if seen is not None and seen != self.generation:
            return True
        if not callable(self._source):
            return False
        token = self._source()
        if inspect.isawaitable(token):
            token = await token
        if seen is not None and seen != self.generation:
            return True  # another refresh finished while this one waited
        self._current = token
        self.generation += 1
        return True

    async def headers(self) -> dict[str, str]:
        token = await self.current()
        return {"Authorization": f"Bearer {token}"} if token else {}
