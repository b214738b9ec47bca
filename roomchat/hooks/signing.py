"""`Roomchat-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with
`--webhook-secret`: what every request roomchat makes to the app carries."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Roomchat-Signature"
TOLERANCE = 300  # seconds a receiver accepts between `t` and its own clock


def signature(secret: str, body: bytes, now: float | None = None) -> str:
    t = int(time.time() if now is None else now)
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(secret: str, body: bytes, header: str, now: float | None = None) -> bool:
    """What a receiver checks: a `v1` that matches, and a `t` within TOLERANCE of now."""
    fields = dict(part.partition("=")[::2] for part in header.split(","))
    try:
        t = int(fields.get("t", ""))
    except ValueError:
        return False
    fresh = abs((time.time() if now is None else now) - t) <= TOLERANCE
    return fresh and hmac.compare_digest(fields.get("v1", ""), _mac(secret, t, body))


def _mac(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
