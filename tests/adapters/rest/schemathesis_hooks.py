"""Schemathesis hooks for the run in test_openapi.py (loaded through SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def filter_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> bool:
    # OpenAPI 3.0 cannot say "after or before, not both"; the document says it in words
    # and the server answers both with a 422 (test_malformed.py pins that).
    return not (query and "after" in query and "before" in query)
