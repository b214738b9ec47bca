"""The process's file descriptors: how many it may open, and how they are shared out.

Every connection and stream holds a descriptor. Once they run out, accept()
fails and new clients sit unanswered in the listen backlog, `/healthz`
included. So the limits are set below the open-file limit, each with a reserve
under it (contract: Limits):

- `limit`: the soft open-file limit, raised to the hard one at start-up;
- `grpc_connections`: gRPC connections (each carries many streams) get an eighth;
- `http_connections`: HTTP connections, all adapters together, the rest less a
  reserve. Past it a new connection is answered 503 and closed, which needs the
  reserve's descriptors for as long as that takes, and the backend's sockets,
  log files and the like take some too;
- `streams`: open streams on every transport (`--max-streams auto`): the HTTP
  connections less another reserve, so that past it a post, `/healthz` or a
  new stream still gets a connection to be answered 503 on.
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass

RESERVE_SHARE = 10  # a tenth of what is left...
RESERVE_MIN = 64  # ...but at least this many (a process holds a few dozen of its own)
RESERVE_MAX = 1024  # ...and at most this many
GRPC_SHARE = 8


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one, as far as the system allows; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else _system_ceiling()
    if soft == resource.RLIM_INFINITY or soft >= target:
        return open_file_limit()
    with contextlib.suppress(ValueError, OSError):  # a hard limit the kernel refuses: keep the soft one
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return open_file_limit()


def open_file_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return _system_ceiling() if soft == resource.RLIM_INFINITY else int(soft)


def _system_ceiling() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 20


def _reserve(count: int) -> int:
    return min(RESERVE_MAX, max(RESERVE_MIN, count // RESERVE_SHARE))


@dataclass(frozen=True, slots=True)
class Budget:
    """How a number of file descriptors is shared out (see the module's docstring)."""

    limit: int

    @property
    def grpc_connections(self) -> int:
        return max(1, self.limit // GRPC_SHARE)

    @property
    def http_connections(self) -> int:
        left = self.limit - self.grpc_connections
        return max(1, left - _reserve(left))

    @property
    def streams(self) -> int:
        connections = self.http_connections
        return max(1, connections - _reserve(connections))


def budget() -> Budget:
    """The budget for the current soft open-file limit."""
    return Budget(open_file_limit())
