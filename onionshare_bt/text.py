"""Text from the network made safe to store and to print (pure, no I/O).

Names, descriptions and versions that other nodes send end up on the user's terminal. A
control character there can move the cursor, rewrite earlier lines or set the window title,
and a bidirectional override can make ``evil.exe`` read as ``exe.live``. :func:`safe_text`
removes those characters and caps the length; ingest code (``trust/``, ``mirror/``) applies
it to everything it takes from another node, and the CLI can apply it again when it renders.
"""

from __future__ import annotations

import re

__all__ = ["NAME_LIMIT", "DESCRIPTION_LIMIT", "has_unsafe", "hex_bytes", "safe_text", "size_text"]

#: longest name kept from another node (a catalogue item, a mirrored item)
NAME_LIMIT = 255
#: longest description kept from another node
DESCRIPTION_LIMIT = 1024

# C0 controls, DEL and C1 controls; the bidi embeddings and overrides (U+202A-U+202E) and
# isolates (U+2066-U+2069); the bidi marks (LRM, RLM, ALM); line and paragraph separators
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"
                     "\u2028\u2029]")
_HEX = frozenset("0123456789abcdef")


def safe_text(text: str, limit: int) -> str:
    """``text`` without control, bidi-override or line-separator characters, at most
    ``limit`` characters long.

    :param text: untrusted text
    :param limit: the most characters kept (counted after the removal)
    :returns: the cleaned text, possibly empty
    :raises TypeError: if ``text`` is not a ``str`` (refuse other types at ingest)
    """
    if not isinstance(text, str):
        raise TypeError(f"expected text, got {type(text).__name__}")
    if limit < 0:
        raise ValueError("limit must be >= 0")
    return _UNSAFE.sub("", text)[:limit]


def has_unsafe(text: str) -> bool:
    """Tell whether ``text`` holds a character :func:`safe_text` would remove."""
    return _UNSAFE.search(text) is not None


def hex_bytes(text: str, size: int) -> bytes | None:
    """``size`` bytes written as ``2 * size`` hex digits (any case, surrounding whitespace
    ignored), or None if ``text`` is anything else."""
    text = text.strip() if isinstance(text, str) else ""
    if len(text) != 2 * size or not set(text.lower()) <= _HEX:
        return None
    return bytes.fromhex(text)


def size_text(n: float) -> str:
    """A byte count for people: ``512 B``, ``65.5 kB``, ``24.0 MB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""
