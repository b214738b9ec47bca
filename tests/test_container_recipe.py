"""The Dockerfile's command line and health check, run as they are written, in this venv
(no container daemon here: docs/deploy.md), and compose.yml's roomchat over Redis."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.backends.redis_server import free_port, redis_server
from tests.support import roomchat_process

ROOT = Path(__file__).parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")


def instruction(name: str) -> list[str]:
    """An instruction's exec form (`CMD ["a", "b"]`) as its argument list."""
    found = re.search(rf"^{name}\s+(?:.*?CMD\s+)?(\[.*\])\s*$", DOCKERFILE, re.M)
    assert found, f"no {name} in exec form"
    words: list[str] = json.loads(found[1])
    return words


def test_the_image_runs_as_a_user_from_a_slim_python_and_checks_its_health() -> None:
    assert re.search(r"^FROM python:3\.\d+-slim$", DOCKERFILE, re.M)
    assert re.search(r"^USER roomchat$", DOCKERFILE, re.M)
    assert instruction("CMD") == ["roomchat", "serve", "--host", "0.0.0.0"]


def test_the_image_command_serves_and_its_health_check_passes(tmp_path: Path) -> None:
    rest = free_port()
    env = {
        "ROOMCHAT_PORT": f"rest={rest},html=0,grpc=0",  # the image's ports are taken on a shared machine
        "ROOMCHAT_HEALTH_URL": f"http://127.0.0.1:{rest}/healthz",
    }
    command, *args = instruction("CMD")
    assert command == "roomchat"
    with roomchat_process(*args[1:], expect=3, env=env) as server:
        assert server.urls["rest"] == f"http://0.0.0.0:{rest}"
        check = instruction("HEALTHCHECK")
        assert check[0] == "python"
        ran = subprocess.run([sys.executable, *check[1:]], env={**os.environ, **env}, timeout=10)
        assert ran.returncode == 0
        assert server.terminate() == 0
    failed = subprocess.run(
        [sys.executable, *check[1:]], env={**os.environ, **env}, capture_output=True, timeout=10
    )
    assert failed.returncode != 0  # nothing listening: unhealthy


def test_compose_runs_workers_over_its_redis(tmp_path: Path) -> None:
    compose = yaml.safe_load((ROOT / "compose.yml").read_text())
    service = compose["services"]["roomchat"]
    assert "redis" in compose["services"] and service["depends_on"]["redis"]["condition"] == "service_healthy"
    command = service["command"]
    assert command[:2] == ["roomchat", "serve"] and "--workers" in command
    backend = command[command.index("--backend") + 1]
    assert backend == "redis://redis:6379/0"
    with redis_server(tmp_path) as redis:  # the same command line, the tests' Redis in place of `redis`
        args = [redis.url if arg == backend else arg for arg in command[2:]]
        args[args.index("--workers") + 1] = "2"
        env = {"ROOMCHAT_PORT": "rest=0,html=0,grpc=0", **service["environment"]}
        with roomchat_process(*args, expect=3, env=env) as server:
            assert set(server.urls) == {"rest", "html", "grpc"}
            assert server.terminate() == 0
