"""docs/grpc.md's Python client runs as written, against a real server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.adapters.grpc.client import target
from tests.support import serve

DOC = Path(__file__).resolve().parents[3] / "docs" / "grpc.md"


async def test_the_python_client_in_the_docs_runs() -> None:
    [example] = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(example, str(DOC), "exec"), namespace)
    async with serve("grpc") as server:
        assert await namespace["main"](target(server.url("grpc"))) == ["hello"]
