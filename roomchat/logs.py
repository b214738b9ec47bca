"""Logging set-up for the command line: plain lines or one JSON object a line."""

from __future__ import annotations

import json
import logging
import re
import sys

LEVELS = ("critical", "error", "warning", "info", "debug")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


# A JWT (three base64url parts, the first a JSON header), a Bearer credential,
# or the `access_token` query parameter: what `--auth jwt` must never log.
_SECRETS = re.compile(
    r"eyJ[\w-]*\.[\w-]*\.[\w-]*|(?<=Bearer )[^\s\"',]+"
    r"|(?<=access_token=)[^\s&\"',]+|(?<=roomchat_token=)[^\s;\"',]+",
    re.IGNORECASE,
)


class RedactTokens(logging.Filter):
    """Rewrites any record that carries a token, whoever logged it (uvicorn, grpc, a plugin)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRETS.sub("[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _SECRETS.sub("[redacted]", logging.Formatter().formatException(record.exc_info))
        return True


def configure(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactTokens())
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
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


# Loggers of the HTTP/1.1, HTTP/2 and WebSocket libraries under the adapters.
_SEES_HEADERS = ("hpack", "h2", "hyperframe", "uvicorn", "httptools", "websockets")
