"""Open connections in this process by transport, for /metrics.

Every adapter counts its own connections here (gRPC's included), so the HTTP
adapters' `/metrics` shows them all; counted per connection, never per message.
"""

from __future__ import annotations

from collections import Counter


class OpenConnections:
    def __init__(self) -> None:
        self.by_transport: Counter[str] = Counter()

    def opened(self, transport: str) -> None:
        self.by_transport[transport] += 1

    def closed(self, transport: str) -> None:
        self.by_transport[transport] -= 1


OPEN_CONNECTIONS = OpenConnections()
"""This process's open connections by transport (`ws`, `grpc`); HTTP's are `capacity.CONNECTIONS`."""
