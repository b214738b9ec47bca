"""The userId rules for invisible and bidirectional characters (contract: Browser safety)."""

from __future__ import annotations

import pytest

from roomchat.core import ValidationError, validation


@pytest.mark.parametrize(
    "name",
    [
        "\u200b",  # zero-width space
        "\u200b\u200c\u200d",  # zero-width space, non-joiner, joiner
        " \u2060\ufeff ",  # word joiner, byte order mark, around spaces
        "\u00ad",  # soft hyphen
        "\u3164\u115f",  # Hangul fillers: letters that draw nothing
        "\u2800",  # braille blank
        "\u200e\u200f",  # direction marks alone
    ],
)
def test_a_name_with_nothing_visible_is_refused(name: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validation.user_id(name)
    assert refused.value.field == "userId"
    assert "visible" in refused.value.message


@pytest.mark.parametrize(
    "control", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
)
def test_a_name_with_a_bidirectional_override_or_isolate_is_refused(control: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validation.user_id(f"ann{control}nimda")
    assert refused.value.field == "userId"
    assert "bidirectional" in refused.value.message


@pytest.mark.parametrize("name", ["ann", "Zoë", "שרה", "محمد", "李雷", "👩\u200d💻 ada", "a\u200bb"])
def test_visible_names_in_any_script_are_kept_as_given(name: str) -> None:
    assert validation.user_id(f"  {name} ") == name


def test_texts_may_hold_invisible_and_bidirectional_characters() -> None:
    for text in ("\u202eevil", "a\u2066b\u2069c", "zero\u200bwidth"):
        assert validation.text(text) == text
