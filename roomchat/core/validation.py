"""The contract's validation rules, the same on every transport."""

from __future__ import annotations

import re

from roomchat.core.errors import ValidationError

MAX_ID = 64
DEFAULT_MAX_TEXT = 4096
_ROOM_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON can smuggle them in; UTF-8 cannot carry them


def is_whole_number(value: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes "²" and "٣", which `int` then refuses or reads."""
    return value.isascii() and value.isdigit()


def room_id(value: object) -> str:
    if not isinstance(value, str) or not _ROOM_ID.fullmatch(value):
        raise ValidationError(
            "roomId", "roomId must be 1-64 characters of A-Z a-z 0-9 - _ ."
        )
    return value


def user_id(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("userId", "userId is required and must be a string")
    trimmed = value.strip()
    if not 1 <= len(trimmed) <= MAX_ID:
        raise ValidationError("userId", "userId must be 1-64 characters after trimming")
    if _CONTROL.search(trimmed):
        raise ValidationError("userId", "userId must not contain control characters")
    if _SURROGATE.search(trimmed):
        raise ValidationError("userId", "userId must be valid Unicode (no lone surrogates)")
    return trimmed


def text(value: object, max_text: int = DEFAULT_MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise ValidationError("text", "text must be a string")
    if not value.strip():
        raise ValidationError("text", "text must not be empty or only whitespace")
    if len(value) > max_text:
        raise ValidationError("text", f"text must be at most {max_text} characters")
    if "\x00" in value:
        raise ValidationError("text", "text must not contain NUL")
    if _SURROGATE.search(value):
        raise ValidationError("text", "text must be valid Unicode (no lone surrogates)")
    return value


MAX_KEY = 64
_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY}}}")


def idempotency_key(value: object) -> str:
    """An idempotency key (contract: Publishing exactly once): 1-64 printable ASCII characters."""
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise ValidationError("key", f"the idempotency key must be 1-{MAX_KEY} printable ASCII characters")
    return value
