"""How the Redis backend reaches Redis: a `redis://` URL, or the sentinels of `redis+sentinel://`.

Either way the backend gets the same two things: a client for its commands and
a pool the reader makes its own blocking connection from. With Sentinel both
ask the sentinels which server is the primary on every new connection
(redis-py's `Sentinel.master_for`), so after a failover they follow the
promoted replica.

    redis://[[user]:password@]host:port/DB[?wait=N]        rediss:// with TLS
    redis+sentinel://[[user]:password@]host:port[,host:port...]/SERVICE[/DB][?wait=N]

The password is the Redis servers' (the sentinels are asked without one);
a sentinel without a port is on 26379. `wait=N`: a post is acknowledged only
once N replicas have it (Redis's `WAIT`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.connection import ConnectionPool, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
MAX_WAIT = 16  # replicas a post may wait for: more is surely a typo


class RedisConnector:
    """Parses the URL (ValueError when malformed, before any I/O) and builds clients from it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.wait = _wait(options.pop("wait", "0"))
        self._sentinel: Sentinel | None = None
        if parts.scheme != SENTINEL_SCHEME:
            self._url = urlunsplit(parts._replace(query=urlencode(options)))
            self.where = _describe(dict(parse_url(self._url)))
            return
        if options:
            raise ValueError(f"unknown option(s) in the Redis URL: {', '.join(sorted(options))}")
        self._url = ""
        userinfo, _, hosts = parts.netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        self._sentinels = [_address(item) for item in hosts.split(",")]
        self._service, self._db = _service(parts.path)
        self._auth = {"username": unquote(username) or None, "password": unquote(password) or None}
        where = ",".join(f"{host}:{port}" for host, port in self._sentinels)
        self.where = f"primary {self._service!r} of the sentinels {where} (db {self._db})"

    def client(self, **options: Any) -> Redis:
        """A client for commands; with Sentinel its connections go to the current primary."""
        if self._url:
            return Redis.from_url(self._url, **options)
        client: Redis = self._sentinels_for(options).master_for(self._service, **self._server(options))
        return client

    def pool(self, **options: Any) -> ConnectionPool:
        """A pool to make single connections from (the reader's); same target as `client`."""
        if self._url:
            return ConnectionPool.from_url(self._url, **options)
        sentinel = self._sentinels_for(options)
        pool_class: Any = SentinelConnectionPool  # untyped in redis-py
        pool: ConnectionPool = pool_class(self._service, sentinel, is_master=True, **self._server(options))
        return pool

    async def aclose(self) -> None:
        """Close the connections to the sentinels (the clients and pools are closed by their owner)."""
        sentinel, self._sentinel = self._sentinel, None
        if sentinel is not None:
            await sentinel.aclose()

    def _sentinels_for(self, options: dict[str, Any]) -> Sentinel:
        """One Sentinel (its connections to the sentinels) shared by the client and the pool."""
        if self._sentinel is None:
            asking = {k: v for k, v in options.items() if k.startswith("socket_") or k == "protocol"}
            asking["decode_responses"] = True
            self._sentinel = Sentinel(self._sentinels, sentinel_kwargs=asking)
        return self._sentinel

    def _server(self, options: dict[str, Any]) -> dict[str, Any]:
        return {**options, **self._auth, "db": self._db}


def _wait(value: str) -> int:
    if not value.isdigit() or int(value) > MAX_WAIT:
        raise ValueError(f"wait must be a number of replicas, 0-{MAX_WAIT}: {value!r}")
    return int(value)


def _address(item: str) -> tuple[str, int]:
    """`host:port`, `host` (port 26379) or `[v6]:port` of one sentinel."""
    host, colon, port = item.rpartition(":")
    if not colon or host.endswith(":"):  # no port, or a bare IPv6 address
        host, port = item, str(SENTINEL_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"a sentinel must be host:port, not {item!r}")
    return host, int(port)


def _service(path: str) -> tuple[str, int]:
    """`/SERVICE` or `/SERVICE/DB`: the name the sentinels monitor the primary by, and the db."""
    name, _, db = path.strip("/").partition("/")
    if not name:
        raise ValueError("the Redis URL needs the sentinels' service name: redis+sentinel://host:port/NAME")
    if db and not db.isdigit():
        raise ValueError(f"the database must be a number, not {db!r}")
    return unquote(name), int(db or 0)


def _describe(options: dict[str, Any]) -> str:
    """Where Redis is, for messages: host:port/db, never the password."""
    if "path" in options:
        return f"unix:{options['path']}"
    host = options.get("host", "localhost")
    return f"{host}:{options.get('port', 6379)}/{options.get('db', 0)}"
