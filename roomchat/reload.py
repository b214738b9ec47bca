"""SIGHUP (contract: Configuration file): read the `--config` file again and apply,
without dropping a stream, what can change while running; name the rest."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from roomchat import configfile

# serve's parameters that a running process can take on (webhook joins them as it lands)
RELOADABLE = frozenset({"jwt_key", "cors_origin", "rate", "max_streams_per_ip", "publish_hook"})
_NOT_SETTINGS = frozenset({"config", "worker"})

log = logging.getLogger("roomchat")

Params = dict[str, object]


class Reloader:
    """Called on SIGHUP. `parse(file values)` gives every serve parameter as the command line,
    the environment and those values now make it (flag > env > file > default); `apply(params)`
    puts the reloadable ones in force, or raises with a reason and changes nothing."""

    def __init__(
        self,
        path: str | None,
        flags: Mapping[str, configfile.Option],
        parse: Callable[[Params], Params],
        apply: Callable[[Params], None],
        running: Params,
    ) -> None:
        self._path = path
        self._flags = flags
        self._names = {option.name: flag for flag, option in flags.items()}
        self._parse = parse
        self._apply = apply
        self._running = dict(running)

    def __call__(self) -> None:
        if self._path is None:
            log.warning("SIGHUP: no --config file to read again; the settings are unchanged")
            return
        try:
            params = self._parse(configfile.read(self._path, self._flags))
        except Exception as exc:  # a file that no longer parses, or a value the options refuse
            log.error("reload: %s; keeping the running settings", _reason(exc))
            return
        running = self._running
        changed = [n for n, value in params.items() if n not in _NOT_SETTINGS and value != running.get(n)]
        live = [name for name in changed if name in RELOADABLE]
        restart = [name for name in changed if name not in RELOADABLE]
        if live:
            try:
                self._apply(params)
            except Exception as exc:
                log.error("reload: %s; keeping the running settings", _reason(exc))
                return
            self._running.update((name, params[name]) for name in live)
        applied = ", ".join(self._flag(n) for n in live) if live else "nothing changed"
        log.info("reloaded %s: %s", self._path, applied)
        if restart:
            log.warning(
                "changed in %s but needs a restart to apply: %s",
                self._path,
                ", ".join(self._flag(n) for n in restart),
            )

    def _flag(self, name: str) -> str:
        return "--" + self._names.get(name, name)


def _reason(exc: Exception) -> str:
    """A click usage error's own words, else the exception's."""
    format_message = getattr(exc, "format_message", None)
    return str(format_message() if callable(format_message) else exc)
