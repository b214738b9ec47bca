"""The contract's validation rules, the same on every transport."""

from __future__ import annotations

import re
import unicodedata

from roomchat.core.errors import ValidationError

MAX_ID = 64
DEFAULT_MAX_TEXT = 4096
_ROOM_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON can smuggle them in; UTF-8 cannot carry them
# Bidirectional overrides and isolates: in a name they reorder the text around it.
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")
# Letters and marks that draw nothing, beside the format characters (category Cf):
# Hangul fillers, the braille blank, the combining grapheme joiner, variation selectors.
_BLANK_GLYPHS = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def is_whole_number(value: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes "²" and "٣", which `int` then refuses or reads."""
    return value.isascii() and value.isdigit()


def bounded_whole_number(value: str, high: int) -> int | None:
    """`value` as a whole number from 0 to `high`, or None if it is not one.

    The digits are counted before `int` reads them: `int` refuses more than 4300
    digits with a ValueError (and is quadratic below that), so an untrusted number
    is bounded first. Leading zeros are allowed, as `int` allows them.
    """
    if not is_whole_number(value):
        return None
    digits = value.lstrip("0")
    if len(digits) > len(str(high)):
        return None
    number = int(digits or "0")
    return number if number <= high else None


def room_id(value: object) -> str:
    if not isinstance(value, str) or not _ROOM_ID.fullmatch(value):
        raise ValidationError(
            "roomId", "roomId must be 1-64 characters of A-Z a-z 0-9 - _ ."
        )
    return value


def user_id(value: object) -> str:
    if value is None:
        raise ValidationError("userId", "userId is required")
    if not isinstance(value, str):
        raise ValidationError("userId", "userId must be a string")
    trimmed = value.strip()
    if not 1 <= len(trimmed) <= MAX_ID:
        raise ValidationError("userId", "userId must be 1-64 characters after trimming")
    if _CONTROL.search(trimmed):
        raise ValidationError("userId", "userId must not contain control characters")
    if _SURROGATE.search(trimmed):
        raise ValidationError("userId", "userId must be valid Unicode (no lone surrogates)")
    if not trimmed.isascii():  # ASCII names, the usual case, cannot break the two rules below
        if _BIDI_CONTROL.search(trimmed):
            raise ValidationError(
                "userId",
                "userId must not contain bidirectional overrides or isolates (U+202A-U+202E, U+2066-U+2069)",
            )
        if all(_invisible(c) for c in trimmed):
            raise ValidationError("userId", "userId must contain a visible character")
    return trimmed


def _invisible(char: str) -> bool:
    """Whether a character draws nothing: a space, a format character (zero-width...), a blank glyph."""
    return char.isspace() or char in _BLANK_GLYPHS or unicodedata.category(char) == "Cf"


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
