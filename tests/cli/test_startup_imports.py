"""Start-up imports only what the chosen adapters and backend need (issue 25: start-up time)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

# What `serve --adapter rest` on the memory backend with --auth none never needs.
NOT_NEEDED = ("jwt", "cryptography", "grpclib", "grpc", "h2", "redis")


def imported_until_listening(*args: str) -> set[str]:
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "roomchat", "serve", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if "listening on" in line:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err[-2000:]
    return {m[1].split(".")[0] for m in re.finditer(r"^import time:.*\|\s+(\S+)$", err, re.M)}


JWT = ("--auth", "jwt", "--jwt-key", "a-start-up-test-secret-of-32-bytes!!")


@pytest.mark.parametrize("needed", [(), JWT])
def test_serve_rest_imports_nothing_it_does_not_use(needed: tuple[str, ...]) -> None:
    modules = imported_until_listening("--adapter", "rest", "--port", "rest=0", *needed)
    assert "starlette" in modules and "uvicorn" in modules  # what it uses
    unneeded = set(NOT_NEEDED) - ({"jwt", "cryptography"} if needed else set())
    assert not modules & unneeded, sorted(modules & unneeded)
    if needed:
        assert "jwt" in modules
