"""What the command line says as it starts: the version, the adapters chosen and
why, the settings in the log, and `--help`'s placeholders for option values."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from roomchat import __version__, logs

log = logging.getLogger("roomchat")

# What `--help` shows for an option's value, where its type alone would say `<int range>`.
PLACEHOLDERS = {
    "adapter": "NAME",
    "port": "NAME=PORT",
    "host": "ADDRESS",
    "backend": "URL",
    "url": "URL",
    "tls_cert": "FILE",
    "tls_key": "FILE",
    "log_level": "LEVEL",
    "keepalive": "SECONDS",
    "drain": "SECONDS",
    "rate": "N",
    "transport": "sse|ws|grpc",
    "server_arg": "ARG",
    "post_path": "PATH",
    "stream_path": "PATH",
    "text_field": "FIELD",
}


def print_version(value: bool | None) -> None:
    """`roomchat --version`, an eager option: prints and exits before any command runs."""
    if value:
        print(__version__)
        raise SystemExit(0)


def show_placeholders(command: Any) -> None:
    """Give every option that takes a value a placeholder (`N`, `URL`, `NAME=PORT`...).

    Options that set their own `metavar` keep it; numbers (by their default) are
    `N`, anything else its name in capitals.
    """
    for sub in getattr(command, "commands", {}).values():
        show_placeholders(sub)
    for param in command.params:
        if param.param_type_name != "option" or param.is_flag or param.metavar is not None:
            continue
        numeric = isinstance(param.default, int | float) and not isinstance(param.default, bool)
        param.metavar = PLACEHOLDERS.get(param.name, "N" if numeric else param.name.upper())


def announce_choice(names: list[str], chosen_by: str | None) -> None:
    """Say which adapters will be served and why, before any of them binds."""
    why = {
        "--adapter": "chosen with --adapter",
        "--all": "--all: every adapter found",
        None: "all found; choose with --adapter NAME",
    }[chosen_by]
    logs.say(f"serving {', '.join(names)} ({why})", adapters=names, version=__version__)


def log_settings(backend: str, **settings: object) -> None:
    shown = " ".join(f"{name.replace('_', '-')}={value}" for name, value in settings.items())
    log.debug("backend %s, %s", _without_password(backend), shown)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
