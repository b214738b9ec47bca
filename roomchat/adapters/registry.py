"""Finds adapters through the entry-point group `roomchat.adapters`."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from roomchat.adapters import AdapterFactory

GROUP = "roomchat.adapters"


@dataclass(frozen=True)
class AdapterEntry:
    name: str
    distribution: str
    version: str
    entry_point: EntryPoint

    def load(self) -> AdapterFactory:
        factory: AdapterFactory = self.entry_point.load()
        return factory


def available() -> dict[str, AdapterEntry]:
    """Every adapter installed, by name; the first registration of a name wins."""
    found: dict[str, AdapterEntry] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        dist = ep.dist
        entry = AdapterEntry(
            ep.name,
            dist.name if dist is not None else "?",
            dist.version if dist is not None else "?",
            ep,
        )
        found.setdefault(ep.name, entry)
    return found
