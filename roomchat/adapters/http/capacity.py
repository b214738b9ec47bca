"""Open HTTP connections in this process, against a cap below the open-file limit and a cap per peer.

Past the cap a new connection is still accepted, answered 503 and closed (see
`GuardedHttpProtocol`): a client is told, where an exhausted open-file limit
would leave it waiting in the listen backlog. The cap is shared by every HTTP
adapter in the process, since they share its descriptors (roomchat.descriptors).

One peer address may hold at most `per_ip` of them (`--max-connections-per-ip`):
past it a connection is answered 429 the same way, so 600 idle connections from
one client no longer take every other client's place. A trusted proxy
(`--trust-proxy`) is not capped: its clients are known only by the headers of
each request, and their streams and posts are limited per client there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from roomchat.adapters.http.identity import Network, is_trusted
from roomchat.descriptors import budget

REFUSED = "the server has too many open connections; try again shortly"
log = logging.getLogger("roomchat.http")


class ConnectionCap:
    """Counts open connections; `admit` says whether one more is within the cap."""

    def __init__(self, limit: int = 0, per_ip: int = 0) -> None:
        self.limit = limit  # 0: no cap
        self.per_ip = per_ip  # 0: no cap
        self.exempt: Sequence[Network] = ()  # trusted proxies
        self.open = 0
        self.refused = 0  # connections answered 503 or 429, in all
        self._full = False
        self._by_peer: dict[str, int] = {}

    def set_from_open_file_limit(self) -> None:
        self.limit = budget().http_connections

    def admit(self, peer: str | None) -> tuple[int, str] | None:
        """Count a new connection from `peer`: None, or the status and reason it is refused with."""
        self.open += 1
        if peer is not None:
            self._by_peer[peer] = count = self._by_peer.get(peer, 0) + 1
            if self.per_ip and count > self.per_ip and not is_trusted(peer, self.exempt):
                self.refused += 1
                return 429, f"too many open connections from {peer} (at most {self.per_ip})"
        if not self.limit or self.open <= self.limit:
            return None
        self.refused += 1
        if not self._full:
            self._full = True
            log.warning("%d HTTP connections open, the most allowed: new ones are answered 503", self.limit)
        return 503, REFUSED

    def release(self, peer: str | None) -> None:
        self.open -= 1
        if peer is not None:
            count = self._by_peer.pop(peer, 1) - 1
            if count > 0:
                self._by_peer[peer] = count
        if self._full and self.open < self.limit:
            self._full = False
            log.warning("HTTP connections below the cap again (%d open)", self.open)


CONNECTIONS = ConnectionCap()
"""This process's HTTP connections; serve_asgi sets its caps."""
