"""Finds adapters through the entry-point group `roomchat.adapters`."""

from __future__ import annotations

from dataclasses import dataclass

from roomchat.adapters import AdapterFactory
from roomchat.plugins import Plugin, installed

GROUP = "roomchat.adapters"


@dataclass(frozen=True)
class AdapterEntry(Plugin):
    def load(self) -> AdapterFactory:
        factory: AdapterFactory = self.entry_point.load()
        return factory


def available() -> dict[str, AdapterEntry]:
    """Every adapter installed, by name; the first registration of a name wins."""
    return {
        name: AdapterEntry(p.name, p.distribution, p.version, p.entry_point)
        for name, p in installed(GROUP).items()
    }
