"""Logging set-up for the command line: plain lines or one JSON object a line.

Every line roomchat writes goes through here once the command line has read its
options: the log (stderr) and the operator's lines (`say`: `serving ...`,
`listening on ...`), so `--log-json` makes each of them one JSON object with a
millisecond UTC timestamp.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LEVELS = ("critical", "error", "warning", "info", "debug")
_as_json = False  # set by `configure`: what `say` writes


def utc_ms(created: float) -> str:
    """`2026-12-08T01:02:03.456Z`, as the contract writes message times."""
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_ms(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})  # `extra={"fields": {...}}`: structured
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(entry)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_ms(record.created)


# A JWT (three base64url parts, the first a JSON header), a Bearer credential,
# or the `access_token` query parameter: what `--auth jwt` must never log.
_SECRETS = re.compile(
    r"eyJ[\w-]*\.[\w-]*\.[\w-]*|(?<=Bearer )[^\s\"',]+"
    r"|(?<=access_token=)[^\s&\"',]+|(?<=roomchat_token=)[^\s;\"',]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return _SECRETS.sub("[redacted]", text)


class RedactTokens(logging.Filter):
    """Rewrites any record that carries a token, whoever logged it (uvicorn, grpc, a plugin)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def configure(
    level: str, as_json: bool, *, say_as_json: bool | None = None, access_log: bool = False
) -> None:
    """`say_as_json`: how `say` writes, when not as the log (a worker speaks plainly to its supervisor)."""
    global _as_json
    _as_json = as_json if say_as_json is None else say_as_json
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactTokens())
    handler.setFormatter(JsonFormatter() if as_json else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own lifecycle lines ("Started server process"...) repeat what the
    # `listening on` line says; its warnings and errors still show.
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))
    # grpclib says at info level that a client cancelled its call: streams end that way.
    logging.getLogger("grpclib").setLevel(max(logging.WARNING, root.level))
    # Libraries that see request headers or frames log them at debug, some as raw bytes
    # (hpack's "Decoding b'...'" shows a Huffman-coded token the filter cannot recognise):
    # never below info, whatever the level asked.
    for name in _SEES_HEADERS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    # --access-log asks for a line per request whatever --log-level says.
    logging.getLogger("roomchat.access").setLevel(logging.INFO if access_log else logging.WARNING)


# Loggers of the HTTP/1.1, HTTP/2 and WebSocket libraries under the adapters.
_SEES_HEADERS = ("hpack", "h2", "hyperframe", "uvicorn", "httptools", "websockets")


def say(message: str, *, level: str = "info", to: TextIO | None = None, **fields: Any) -> None:
    """A line for the operator: `roomchat: <message>` on stdout (or `to`), or under
    --log-json one JSON object, `fields` included."""
    stream = to or sys.stdout
    if _as_json:
        entry = {"time": utc_ms(datetime.now(UTC).timestamp()), "level": level, "logger": "roomchat"}
        stream.write(json.dumps({**entry, "message": message, **fields}) + "\n")
    else:
        stream.write(f"roomchat: {'' if level == 'info' else level + ': '}{message}\n")
    stream.flush()
