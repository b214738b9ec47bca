"""The worked example of docs/backends.md, installed as its own distribution:
listed by `roomchat backends`, passing roomchat's backend suite the way its
author runs it, and serving through `roomchat serve --backend ring://`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from roomchat.backends.registry import available
from tests.support import roomchat_process

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "examples" / "roomchat-ring"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(a copy of the example's source, an environment where it is installed on its own)."""
    source = tmp_path_factory.mktemp("src") / "roomchat-ring"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        check=True, capture_output=True,
    )  # fmt: skip
    return source, {**os.environ, "PYTHONPATH": str(target)}


def test_roomchat_backends_lists_it_beside_the_built_in_ones(installed: tuple[Path, dict[str, str]]) -> None:
    _, env = installed
    out = subprocess.run(
        [sys.executable, "-m", "roomchat", "backends"], capture_output=True, text=True, env=env, check=True
    )
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["ring"] == ["roomchat-ring", "0.1.0"]
    assert {"memory", "sqlite", "redis", "rediss"} <= rows.keys()


def test_it_passes_the_backend_suite_as_its_author_runs_it(installed: tuple[Path, dict[str, str]]) -> None:
    source, env = installed
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(source),
         str(source / "tests")],
        capture_output=True, text=True, env=env, cwd=source, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    summary = run.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    assert int(summary.split()[0]) >= 9  # every test of the suite ran, not just a few


async def test_serve_uses_it_by_url_scheme(installed: tuple[Path, dict[str, str]]) -> None:
    _, env = installed
    args = ("--adapter", "rest", "--port", "rest=0", "--backend", "ring://")
    with roomchat_process(*args, env={"PYTHONPATH": env["PYTHONPATH"]}) as server:
        url = server.urls["rest"]
        async with httpx.AsyncClient(timeout=5) as http:
            posted = (await http.post(f"{url}/api/room/lobby", json={"userId": "ann", "text": "hi"})).json()
            page = (await http.get(f"{url}/api/room/lobby/messages")).json()["messages"]
            assert page == [posted["message"]]
            assert (await http.get(f"{url}/api/rooms")).json()["rooms"][0]["roomId"] == "lobby"
        assert server.terminate() == 0


def test_the_backend_guide_quotes_real_code_and_names_every_built_in_backend() -> None:
    guide = (ROOT / "docs" / "backends.md").read_text()
    sources = {
        "python": [
            EXAMPLE / "roomchat_ring" / "__init__.py",
            EXAMPLE / "tests" / "test_ring.py",
            ROOT / "roomchat" / "core" / "ports.py",
        ],
        "toml": [EXAMPLE / "pyproject.toml", ROOT / "pyproject.toml"],
    }
    blocks = re.findall(r"```(python|toml)\n(.*?)```", guide, re.S)
    assert len(blocks) >= 5
    for language, block in blocks:
        assert any(block in path.read_text() for path in sources[language]), (
            f"docs/backends.md quotes code that is not in the sources:\n{block}"
        )
    for scheme, entry in available().items():
        if entry.distribution == "roomchat":
            assert f"`{scheme}" in guide, f"backend {scheme!r} is not in docs/backends.md"
