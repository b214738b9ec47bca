"""The one-process defaults of the Backend port's parts (roomchat.core.ports).

A backend that only one process uses has no other process to share rate
buckets or presence with: it inherits `OneProcess` and writes the history
and key parts itself (`RoomLog`, `KeyedPosts`), as the memory and sqlite
backends and the worked example in examples/roomchat-ring do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from roomchat.core.limits import TokenBuckets
from roomchat.core.presence import PresencePart


class OneProcessBuckets:
    """`RateBuckets` kept in this process."""

    _one_process_buckets: TokenBuckets | None = None

    async def spend(self, key: str, rate: float, burst: float) -> float:
        buckets = self._one_process_buckets
        if buckets is None:
            buckets = self._one_process_buckets = TokenBuckets()
        return buckets.spend(key, rate, burst)


class OneProcessPresence:
    """`PresenceStore` with no other process to share a part with or to read one from."""

    async def share_presence(
        self, parts: Mapping[str, PresencePart | None], ttl: float, changed: bool
    ) -> None:
        return None

    async def presence(self, room_ids: Sequence[str]) -> dict[str, list[PresencePart]]:
        return {}


class OneProcess(OneProcessBuckets, OneProcessPresence):
    """Both defaults: what a backend for one process inherits."""
