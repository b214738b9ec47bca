"""`/docs`: the OpenAPI document rendered by Swagger UI, from the pip-installed
`swagger-ui-bundle`, with no CDN and no inline script (the strict CSP holds).

The document travels inside the page as a `<script type="application/json">`
block, which the policy allows because it never runs: the page renders without
fetching anything but its own script and style.
"""

from __future__ import annotations

import html
import json
from typing import Any

import swagger_ui_bundle
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

SWAGGER_UI = "/static/swagger-ui"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{ui}/swagger-ui.css">
<link rel="stylesheet" href="/static/docs.css">
<script src="{ui}/swagger-ui-bundle.js" defer></script>
<script src="/static/docs.js" defer></script>
</head>
<body>
<header class="roomchat-docs-header">
<p>The raw document: <a href="/openapi.json">/openapi.json</a>. Many rooms on one WebSocket:
<code>GET /api/ws</code> below, subprotocol <code>roomchat.v1</code>, its frames in its description.</p>
</header>
<div id="swagger-ui"></div>
<script type="application/json" id="openapi">{spec}</script>
</body>
</html>
"""


def docs_page(openapi: dict[str, Any]) -> str:
    # `</` cannot close the JSON block early: JSON allows `<\\/` for `</`.
    spec = json.dumps(openapi).replace("</", "<\\/")
    return _PAGE.format(title=html.escape(openapi["info"]["title"]), ui=SWAGGER_UI, spec=spec)


def swagger_ui_route() -> BaseRoute:
    """Swagger UI's script and style, from the installed bundle."""
    return Mount(SWAGGER_UI, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-ui")
