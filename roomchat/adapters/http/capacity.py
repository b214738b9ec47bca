"""Open HTTP connections in this process, against a cap below the open-file limit.

Past the cap a new connection is still accepted, answered 503 and closed (see
`GuardedHttpProtocol`): a client is told, where an exhausted open-file limit
would leave it waiting in the listen backlog. The cap is shared by every HTTP
adapter in the process, since they share its descriptors (roomchat.descriptors).
"""

from __future__ import annotations

import logging

from roomchat.descriptors import budget

REFUSED = "the server has too many open connections; try again shortly"
log = logging.getLogger("roomchat.http")


class ConnectionCap:
    """Counts open connections; `admit` says whether one more is within the cap."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit  # 0: no cap
        self.open = 0
        self.refused = 0  # connections answered 503, in all
        self._full = False

    def set_from_open_file_limit(self) -> None:
        self.limit = budget().http_connections

    def admit(self) -> bool:
        """Count a new connection: False when it is past the cap and must be refused."""
        self.open += 1
        if not self.limit or self.open <= self.limit:
            return True
        self.refused += 1
        if not self._full:
            self._full = True
            log.warning("%d HTTP connections open, the most allowed: new ones are answered 503", self.limit)
        return False

    def release(self) -> None:
        self.open -= 1
        if self._full and self.open < self.limit:
            self._full = False
            log.warning("HTTP connections below the cap again (%d open)", self.open)


CONNECTIONS = ConnectionCap()
"""This process's HTTP connections; serve_asgi sets its cap."""
