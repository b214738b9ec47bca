"""`python -m tests.limits.low_nofile LIMIT ARGS...`: the roomchat command with its open-file
limit lowered first (LIMIT: both soft and hard, or SOFT:HARD), so that tests reach it in seconds."""

from __future__ import annotations

import resource
import sys

from roomchat.cli import main

if __name__ == "__main__":
    soft, _, hard = sys.argv.pop(1).partition(":")
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(soft), int(hard or soft)))
    main()
