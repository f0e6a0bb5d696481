"""Where the CLI's words go: data to stdout, messages to stderr.

Text from the network (names, versions, reasons, errors of other nodes) is printed only
through :func:`shown`, which removes control and bidi-override characters and caps its
length; and every line of text output passes through :func:`clean` as a last guard, so that
nothing a peer sent can move the cursor, rewrite a line or reorder what the user reads.
JSON output needs neither: ``json.dumps`` escapes every control character.
"""

from __future__ import annotations

import json

import click

from .text import safe_text

#: longest line printed as text (a last guard; fields have their own, shorter limits)
LINE_LIMIT = 10_000
#: longest remote name shown in a listing
NAME_WIDTH = 120


def shown(value, limit: int = NAME_WIDTH) -> str:
    """Remote text as it may be printed: without control or bidi-override characters, at
    most ``limit`` characters (an ellipsis marks a cut)."""
    text = str(value)
    text = safe_text(text, len(text))
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def clean(text: str) -> str:
    """``text`` with each line made safe to print (line breaks kept)."""
    return "\n".join(safe_text(line, LINE_LIMIT) for line in str(text).split("\n"))


def err(message: str) -> None:
    """A message for the user on stderr, prefixed ``obt:``."""
    click.echo(f"obt: {clean(message)}", err=True)


def emit(data, as_json: bool, text: str | None = None) -> None:
    """Print the command's data on stdout: one JSON document, or the given text."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif text is not None:
        click.echo(clean(text))
