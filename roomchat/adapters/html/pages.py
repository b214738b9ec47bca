"""Rendering the pages: Jinja2 with autoescape, and the headers every page sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from roomchat.core import Message

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# Scripts, styles, images, fetches and streams from this origin only; no
# inline script or style, no plugins, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from `templates/`, every value escaped, with the security headers."""
    html = _env.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)


def error_page(status: int, title: str, detail: str) -> HTMLResponse:
    return render("error.html", status, status=status, title=title, detail=detail)


def shown(message: Message) -> dict[str, str]:
    """A message as the templates show it; `clock` is HH:MM UTC until the script localises it."""
    return {
        "id": message.id,
        "user": message.user_id,
        "text": message.text,
        "time": message.time,
        "clock": message.time[11:16],
    }
