"""Adapter discovery: the registry, broken plugins, and every adapter documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from roomchat.adapters.registry import available

DOCS = Path(__file__).parent.parent.parent / "docs"


def test_built_in_adapters_are_registered_like_any_plugin() -> None:
    found = available()
    for name in ("rest", "html", "grpc"):
        assert found[name].distribution == "roomchat"
        assert found[name].entry_point.group == "roomchat.adapters"
        factory = found[name].load()
        assert isinstance(factory.default_port, int)


def test_every_installed_adapter_is_documented() -> None:
    listed = (DOCS / "adapters.md").read_text()
    for name in available():
        assert f"`{name}`" in listed, f"adapter {name!r} is not in docs/adapters.md"


def _fake_plugin(tmp_path: Path, target: str) -> dict[str, str]:
    dist = tmp_path / "roomchat_broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: roomchat-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[roomchat.adapters]\nbroken = {target}\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_a_plugin_that_fails_to_import_is_one_clear_line(tmp_path: Path) -> None:
    env = _fake_plugin(tmp_path, "no_such_module_anywhere:Adapter")
    listed = subprocess.run(
        [sys.executable, "-m", "roomchat", "adapters"], capture_output=True, text=True, env=env
    )
    assert "broken  roomchat-broken 1.0" in listed.stdout  # listing does not import it
    out = subprocess.run(
        [sys.executable, "-m", "roomchat", "serve", "--adapter", "broken"],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "roomchat: error: adapter 'broken' failed to load: No module named 'no_such_module_anywhere'"
    ]


def test_the_plugin_guide_quotes_the_example_as_it_is() -> None:
    import re

    guide = (DOCS / "plugins.md").read_text()
    example = (DOCS.parent / "examples" / "roomchat-ndjson" / "roomchat_ndjson" / "__init__.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.S)
    quoted = [b for b in blocks if "Protocol" not in b]
    assert len(quoted) == 3
    for block in quoted:
        assert block in example, block[:80]
