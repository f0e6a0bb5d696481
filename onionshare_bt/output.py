"""Where the CLI's words go: data to stdout, messages to stderr."""

from __future__ import annotations

import json

import click


def err(message: str) -> None:
    """A message for the user on stderr, prefixed ``obt:``."""
    click.echo(f"obt: {message}", err=True)


def emit(data, as_json: bool, text: str | None = None) -> None:
    """Print the command's data on stdout: one JSON document, or the given text."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif text is not None:
        click.echo(text)
