"""What is wrong with the sqlite file: said once in the log, and by /healthz until it is mended.

A file corrupted in the middle answers the reads that reach the bad pages with
503 and a full disk refuses every write, but each was silent: nothing in the log
and /healthz `ok`. Each kind of fault is logged once when it begins (never per
request) and makes `ping` false with the reason. Corruption stays until the file
is repaired and the server restarted; a full disk or an I/O error clears, with a
log line, once an operation of the same sort (read or write) succeeds again.
"""

from __future__ import annotations

import logging
import sqlite3

log = logging.getLogger("roomchat.sqlite")

_KINDS = {
    sqlite3.SQLITE_CORRUPT: "corrupt",
    sqlite3.SQLITE_NOTADB: "corrupt",
    sqlite3.SQLITE_FULL: "full",
    sqlite3.SQLITE_IOERR: "io",
}
_STICKY = "corrupt"


class Faults:
    """The faults seen on one sqlite file: kind -> (read or write, the reason)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._current: dict[str, tuple[str, str]] = {}

    def failed(self, sort: str, exc: BaseException) -> None:
        """An operation (`sort`: read or write) failed with `exc`."""
        code = getattr(exc, "sqlite_errorcode", None)
        kind = _KINDS.get(code & 0xFF, "error") if isinstance(code, int) else "error"
        if kind not in self._current:
            log.error(
                "the sqlite file %s cannot be %s: %s; /healthz answers 503",
                self._path,
                "read" if sort == "read" else "written",
                exc,
            )
        self._current[kind] = (sort, f"sqlite file {kind}: {exc}")

    def succeeded(self, sort: str) -> None:
        """An operation of this sort succeeded: faults it had shown are over (not corruption)."""
        for kind, (seen, _) in list(self._current.items()):
            if seen == sort and kind != _STICKY:
                del self._current[kind]
                log.warning(
                    "the sqlite file %s can be %s again", self._path, "read" if sort == "read" else "written"
                )

    @property
    def reason(self) -> str | None:
        """Why the backend is unhealthy, or None."""
        reasons = [reason for _, reason in self._current.values()]
        return "; ".join(reasons) if reasons else None
