"""A non-editable install of roomchat carries roomchat.js: in a checkout the html adapter's
static/roomchat.js (and .d.ts) is a link to clients/js/, and the wheel `pip install .` builds
holds the file itself, byte for byte."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[3]


def test_the_wheel_carries_clients_js_as_it_is(tmp_path: Path) -> None:
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip_wheel, "-w", tmp_path, ROOT],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("roomchat-*.whl")
    with zipfile.ZipFile(wheel) as packed:
        for name in ("roomchat.js", "roomchat.d.ts"):
            packaged = packed.read(f"roomchat/adapters/html/static/{name}")
            assert packaged == (ROOT / "clients" / "js" / name).read_bytes(), name
