"""`python -m tests.limits.low_nofile LIMIT ARGS...`: the roomchat command with its open-file
limit (soft and hard) lowered to LIMIT first, so that tests reach it in seconds."""

from __future__ import annotations

import resource
import sys

from roomchat.cli import main

if __name__ == "__main__":
    limit = int(sys.argv.pop(1))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    main()
