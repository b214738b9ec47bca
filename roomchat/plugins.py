"""Finds plugins: the entry points of one group, by name, with their distribution."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points


@dataclass(frozen=True)
class Plugin:
    name: str
    distribution: str
    version: str
    entry_point: EntryPoint


def installed(group: str) -> dict[str, Plugin]:
    """Every entry point of `group`, by name; the first registration of a name wins.

    Reads metadata only: nothing is imported until an entry point is loaded.
    """
    found: dict[str, Plugin] = {}
    for ep in sorted(entry_points(group=group), key=lambda ep: ep.name):
        dist = ep.dist
        plugin = Plugin(
            ep.name,
            dist.name if dist is not None else "?",
            dist.version if dist is not None else "?",
            ep,
        )
        found.setdefault(ep.name, plugin)
    return found


def listing(found: dict[str, Plugin]) -> list[str]:
    """`roomchat adapters` / `roomchat backends` rows: name, distribution, version."""
    width = max((len(n) for n in found), default=4)
    return [f"{p.name:<{width}}  {p.distribution} {p.version}" for p in found.values()]
