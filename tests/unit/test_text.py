"""text.safe_text: what another node sends is stripped of terminal controls and capped."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onionshare_bt.text import has_unsafe, safe_text

CONTROLS = ["\x00", "\x07", "\x1b", "\n", "\r", "\t", "\x7f", "\x80", "\x9b", "\x9f",
            "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
            "\u2069", "\u200e", "\u200f", "\u061c", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_each_control_and_bidi_character_is_removed(char):
    assert safe_text(f"a{char}b", 10) == "ab"
    assert has_unsafe(f"a{char}b") and not has_unsafe("ab")


def test_an_escape_sequence_loses_its_escape_and_a_bidi_trick_its_override():
    assert safe_text("\x1b[2J\x1b]0;owned\x07name", 100) == "[2J]0;ownedname"
    assert safe_text("photo\u202egpj.exe", 100) == "photogpj.exe"


def test_plain_text_and_non_latin_scripts_are_kept():
    for text in ("album (2024) – live", "日本語のアルバム", "Ünïcødé ☃", "שלום עולם"):
        assert safe_text(text, 1000) == text


def test_length_is_capped_after_removal():
    assert safe_text("\x1b" * 10 + "x" * 300, 255) == "x" * 255
    assert safe_text("abc", 0) == ""


@pytest.mark.parametrize("value", [None, 5, b"bytes", ["a"], {"a": 1}])
def test_non_strings_are_refused(value):
    with pytest.raises(TypeError):
        safe_text(value, 10)


@given(st.text(), st.integers(0, 300))
def test_the_result_is_always_safe_and_within_the_limit(text, limit):
    out = safe_text(text, limit)
    assert len(out) <= limit and not has_unsafe(out)
    assert safe_text(out, limit) == out
