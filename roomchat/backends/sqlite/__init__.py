"""`sqlite:///PATH`: history and ids that survive a restart, in one file, for one process."""

from roomchat.backends.sqlite.backend import SqliteBackend

__all__ = ["SqliteBackend"]
