"""Adapter discovery: the registry, broken plugins, the runner's side of the
interface, and every adapter documented."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from roomchat import __version__
from roomchat.adapters import AdapterSettings, Ready
from roomchat.adapters.registry import GROUP, available
from roomchat.bootstrap import ServiceSettings, build_service
from roomchat.runner import StartupError, run

ROOT = Path(__file__).parent.parent.parent
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "examples" / "roomchat-ndjson"


def test_built_in_adapters_are_registered_like_any_plugin() -> None:
    found = available()
    for name in ("rest", "html", "grpc"):
        entry = found[name]
        assert (entry.name, entry.distribution, entry.version) == (name, "roomchat", __version__)
        assert entry.entry_point.group == GROUP == "roomchat.adapters"
        factory = entry.load()
        assert isinstance(factory.default_port, int)


def _declared_adapters(pyproject: Path) -> set[str]:
    entry_points = tomllib.loads(pyproject.read_text())["project"]["entry-points"]
    return set(entry_points.get(GROUP, {}))


def test_every_adapter_of_this_repository_is_documented() -> None:
    """roomchat's own and its examples' adapters, as their pyproject.toml declare them:
    what else the venv holds (a third-party plugin) is not this repository's to document."""
    listed = (DOCS / "adapters.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", listed, re.M))
    built_in = _declared_adapters(ROOT / "pyproject.toml")
    examples = set().union(*(_declared_adapters(p) for p in (ROOT / "examples").glob("*/pyproject.toml")))
    assert built_in == {"rest", "html", "grpc"} and "ndjson" in examples
    for name in built_in | examples:
        assert name in rows, f"adapter {name!r} has no row in docs/adapters.md"
    for name in built_in:
        assert (DOCS / f"{name}.md").exists() and f"]({name}.md)" in listed


def _fake_plugin(tmp_path: Path, target: str) -> dict[str, str]:
    """A distribution `roomchat-broken` registering adapter `broken` = target."""
    dist = tmp_path / "roomchat_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: roomchat-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[roomchat.adapters]\nbroken = {target}\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def _roomchat(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roomchat", *args], capture_output=True, text=True, env=env, timeout=20
    )


def test_a_plugin_that_fails_to_import_is_one_clear_line(tmp_path: Path) -> None:
    env = _fake_plugin(tmp_path, "no_such_module_anywhere:Adapter")
    listed = _roomchat(env, "adapters")
    assert "broken  roomchat-broken 1.0" in listed.stdout  # listing does not import it
    out = _roomchat(env, "serve", "--adapter", "broken")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "roomchat: error: adapter 'broken' failed to load: No module named 'no_such_module_anywhere'"
    ]


def test_a_factory_that_raises_is_one_clear_line(tmp_path: Path) -> None:
    env = _fake_plugin(tmp_path, "json:loads")  # importable, but not an adapter factory
    out = _roomchat(env, "serve", "--adapter", "broken", "--port", "broken=0")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roomchat: error: adapter 'broken' failed to start: ")


class _Prompt:
    """An adapter that does just what the interface asks, and returns at once when told."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    async def serve(self, ready: Ready, stopping: asyncio.Event) -> None:
        ready("test://prompt")
        if self.fail:
            raise RuntimeError("no luck")
        await stopping.wait()


async def test_an_adapter_that_returns_at_once_when_stopping_is_a_clean_stop() -> None:
    urls: list[str] = []
    listening, stopping = asyncio.Event(), asyncio.Event()

    def ready(name: str, url: str) -> None:
        urls.append(f"{name} {url}")
        listening.set()

    task = asyncio.ensure_future(
        run(build_service(ServiceSettings()), {"prompt": _Prompt()}, ready, stopping)
    )
    await asyncio.wait_for(listening.wait(), 5)
    stopping.set()
    await asyncio.wait_for(task, 5)  # no "prompt stopped by itself"
    assert urls == ["prompt test://prompt"]


async def test_an_adapter_that_fails_is_reported_by_name() -> None:
    service = build_service(ServiceSettings())
    with pytest.raises(StartupError, match=r"^prompt failed: no luck$"):
        await asyncio.wait_for(run(service, {"prompt": _Prompt(fail=True)}, lambda n, u: None), 5)


def test_adapter_settings_defaults_are_the_contracts() -> None:
    settings = AdapterSettings()
    assert (settings.host, settings.max_body, settings.keepalive, settings.tls) == (
        "127.0.0.1",
        64 * 1024,
        15.0,
        False,
    )


def test_the_plugin_guide_quotes_real_code() -> None:
    guide = (DOCS / "plugins.md").read_text()
    sources = {
        "python": [
            EXAMPLE / "roomchat_ndjson" / "__init__.py",
            ROOT / "roomchat" / "adapters" / "__init__.py",
        ],
        "toml": [EXAMPLE / "pyproject.toml"],
    }
    blocks = re.findall(r"```(python|toml)\n(.*?)```", guide, re.S)
    assert len(blocks) >= 6
    for language, block in blocks:
        assert any(block in path.read_text() for path in sources[language]), (
            f"docs/plugins.md quotes code that is not in the sources:\n{block}"
        )
