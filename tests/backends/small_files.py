"""`python -m tests.backends.small_files BYTES ARGS...`: the roomchat command unable to grow a
file past BYTES (RLIMIT_FSIZE, with SIGXFSZ ignored): writes past it fail as on a full disk."""

from __future__ import annotations

import resource
import signal
import sys

from roomchat.cli import main

if __name__ == "__main__":
    limit = int(sys.argv.pop(1))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    main()
