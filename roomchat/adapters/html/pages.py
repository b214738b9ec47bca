"""Rendering the pages: Jinja2 with autoescape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from roomchat.core import Message

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

# The security headers (CSP, nosniff, no-referrer) are added to every HTML
# response by roomchat.adapters.http.security; a page is never worth caching.
PAGE_HEADERS = {"cache-control": "no-store"}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from `templates/`, every value escaped."""
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
