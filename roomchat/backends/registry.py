"""Finds backends through the entry-point group `roomchat.backends`, keyed by URL scheme."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from roomchat.core.ports import Backend, BackendSettings
from roomchat.plugins import Plugin, installed

GROUP = "roomchat.backends"


class BackendFactory(Protocol):
    """What an entry point in `roomchat.backends` loads: usually the backend class.

    Called with the whole URL; raise ValueError for one it cannot use (it is
    shown to the user as is), and do no I/O before `Backend.start`.
    """

    def __call__(self, url: str, settings: BackendSettings) -> Backend: ...


@dataclass(frozen=True)
class BackendEntry(Plugin):
    def load(self) -> BackendFactory:
        factory: BackendFactory = self.entry_point.load()
        return factory


def available() -> dict[str, BackendEntry]:
    """Every backend installed, by URL scheme; the first registration of a scheme wins."""
    return {
        name: BackendEntry(p.name, p.distribution, p.version, p.entry_point)
        for name, p in installed(GROUP).items()
    }


def scheme_of(url: str) -> str:
    """`memory` for `memory` and `memory://`, `sqlite` for `sqlite:///chat.db`..."""
    return url.partition("://")[0] if "://" in url else url


def backend_from_url(url: str, settings: BackendSettings | None = None) -> Backend:
    """The backend registered for the URL's scheme, built with `settings`.

    ValueError names the installed schemes when none matches, or says why the
    backend refused the URL or failed to load.
    """
    found = available()
    scheme = scheme_of(url)
    entry = found.get(scheme)
    if entry is None:
        raise ValueError(
            f"unknown backend {url!r}: no backend for {scheme!r}; installed: {', '.join(sorted(found))}"
        )
    try:
        factory = entry.load()
    except Exception as exc:  # a broken plugin: one line, never a traceback
        raise ValueError(f"backend {scheme!r} failed to load: {exc}") from None
    return factory(url, settings or BackendSettings())
