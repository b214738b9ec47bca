"""`Client`: the API of the contract's Clients section, over one WebSocket and plain HTTP requests."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import httpx

from roomchat_client.backoff import delay
from roomchat_client.connection import RETRIED, Connection
from roomchat_client.errors import RoomchatError
from roomchat_client.events import Message
from roomchat_client.subscription import Subscription
from roomchat_client.tokens import Tokens, TokenSource

BUFFER = 10_000  # unread events a subscription keeps before it pauses its room


class Client:
    """A roomchat client: `async with Client("http://127.0.0.1:8080", user_id="ann") as client`.

    `url` is the origin of the server's `rest` adapter. `token` is a string, or a
    function (plain or async) that returns one; a function is called again
    whenever the server says the token expired. `on_state(connected)` is called
    whenever the connection comes up or goes down.
    """

    def __init__(
        self,
        url: str,
        *,
        user_id: str | None = None,
        token: TokenSource = None,
        on_state: Callable[[bool], None] | None = None,
        buffer: int = BUFFER,
    ) -> None:
        self.url = url.rstrip("/")
        self.user_id = user_id
        self._tokens = Tokens(token)
        self._buffer = buffer
        self._connection = Connection(_ws_url(self.url, user_id), self._tokens, user_id, on_state)
        self._http = httpx.AsyncClient(base_url=self.url, timeout=30, verify=_tls(self.url))
        self._started = False

    async def __aenter__(self) -> Client:
        self._connection.start()
        self._started = True
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open now."""
        return self._connection.connected

    async def close(self) -> None:
        """Close the WebSocket: every subscription's iteration ends, waiting publishes raise."""
        await self._connection.close()
        await self._http.aclose()

    async def subscribe(
        self, room: str, last_id: str | None = None, presence: bool = False, typing: bool = False
    ) -> Subscription:
        """Subscribe to `room` after `last_id` (None: from now); returns once the server confirmed.

        While the connection is down this waits for it. `typing` asks for typing events;
        this server does not send them yet, and this client has no `Typing` event yet.
        """
        self._require_started()
        if last_id is None:
            last_id = await self._last_id(room)
        subscription = Subscription(
            self._connection, room, last_id, presence=presence, typing=typing, buffer=self._buffer
        )
        await self._connection.add(subscription)
        return subscription

    async def _last_id(self, room: str) -> str | None:
        """The room's last message id, to subscribe after: asked again (with the WebSocket's backoff)
        while the server cannot be reached or is too busy (408, 429, 503), as the subscription waits."""
        attempt = 0
        while True:
            try:
                last_id = (await self._get(f"/api/room/{quote(room, safe='')}")).get("lastId")
                return last_id if isinstance(last_id, str) else None
            except ConnectionError:
                pass
            except RoomchatError as refused:
                if refused.code not in RETRIED:
                    raise
            await asyncio.sleep(delay(attempt))
            attempt += 1

    async def publish(self, room: str, text: str, timeout: float = 30) -> Message:
        """Post `text` to `room`; returns the stored message once acknowledged.

        Exactly once: the post carries an idempotency key and is sent again with it
        after a reconnect. Made while disconnected, it waits for the connection.
        Raises `TimeoutError` after `timeout` seconds, `RoomchatError` if refused.
        """
        self._require_started()
        async with asyncio.timeout(timeout):
            return await self._connection.publish(room, text)

    async def history(
        self, room: str, limit: int = 50, before: str | None = None, after: str | None = None
    ) -> list[Message]:
        """A page of the room's history, oldest first (the latest `limit`, or those around an id)."""
        params: dict[str, str | int] = {"limit": limit}
        if before is not None:
            params["before"] = before
        if after is not None:
            params["after"] = after
        page = await self._get(f"/api/room/{quote(room, safe='')}/messages", params)
        return [Message.from_json(m) for m in page["messages"]]

    async def presence(self, room: str) -> list[str]:
        """The user ids present in `room` now (anonymous listeners are not named)."""
        answer = await self._get(f"/api/room/{quote(room, safe='')}/presence")
        return [user["userId"] for user in answer["users"]]

    async def _get(self, path: str, params: dict[str, str | int] | None = None) -> dict[str, Any]:
        """GET with the current token; asked again once with a fresh one if it expired."""
        generation = self._tokens.generation
        response = await self._request(path, params)
        if response.status_code == 401 and self._tokens.refreshable:
            await self._tokens.refresh(generation)
            response = await self._request(path, params)
        if response.status_code >= 400:
            raise RoomchatError(response.status_code, _error_message(response))
        answer = response.json()
        if not isinstance(answer, dict):
            raise RoomchatError(response.status_code, "the server did not answer a JSON object")
        return answer

    async def _request(self, path: str, params: dict[str, str | int] | None) -> httpx.Response:
        try:
            return await self._http.get(path, params=params, headers=await self._tokens.headers())
        except httpx.TransportError as exc:
            raise ConnectionError(f"cannot reach {self.url}: {exc}") from exc

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("use the client in `async with Client(...) as client:`")


def _tls(url: str) -> ssl.SSLContext | bool:
    """No TLS for http://; for https:// one context for every client of the process: building one
    reads every CA certificate (half a second of CPU here), which 2,000 clients must not do each."""
    return _tls_context() if url.startswith("https:") else False


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _ws_url(base: str, user_id: str | None) -> str:
    parts = urlsplit(base)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    query = urlencode({"userId": user_id}) if user_id else ""
    return urlunsplit((scheme, parts.netloc, parts.path + "/api/ws", query, ""))


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
