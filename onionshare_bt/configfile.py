"""``<home>/config.toml`` changed in place: ``obt config set`` and the web UI's settings page.

A value arrives as text (a command line, a form) and is read as its setting's type (a
whole number, a number, true/false or text), checked as :func:`.config.load` checks it,
and only then written. The file is rewritten through a temporary file (0600, renamed over
it), so a crash leaves the old file or the new one; its comments and other lines are kept:
a setting's own line is replaced, or added at the end. Nothing changes in a running node
until it restarts.

The web UI may change only :data:`UI_KEYS`: none of them names a program to run, a torrc
option, a network or a release key, so a UI session (perhaps reached through an onion)
never gains a way to run code on the machine or to weaken release checks.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
import tomllib
from pathlib import Path

from . import config
from .errors import UsageError

#: what ``obt config set`` changes: every one-line setting (lists are edited by hand)
CLI_KEYS = tuple(k for k in config.FILE_KEYS if k not in ("tor_options", "release_keys"))
#: what the web UI changes
UI_KEYS = ("onions", "fetch_timeout", "bootstrap_timeout", "announce_interval",
           "stall_timeout", "download_rate", "upload_rate", "max_paths", "open_shares", "relay", "relay_nickname",
           "relay_rate", "relay_burst", "relay_contact", "free_base", "ratio",
           "publish_trust", "trust_fan_out", "trust_total", "trust_timeout")
#: settings that must be above zero (the others of a number type may be zero)
_POSITIVE = {"onions", "fetch_timeout", "bootstrap_timeout", "announce_interval",
             "stall_timeout", "trust_fan_out", "trust_total", "trust_timeout"}
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(config.Config)}


def read(home: Path) -> dict:
    """What ``config.toml`` sets, by its keys (empty if there is no file)."""
    path = home / "config.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc


def value_of(key: str, text: str | int | float | bool) -> str | int | float | bool:
    """``text`` as setting ``key`` takes it.

    :raises UsageError: an unknown setting, or a value of the wrong kind
    """
    if key not in config.FILE_KEYS:
        raise UsageError(f"no setting is called {key[:40]!r}",
                         hint="obt config show lists them all.")
    default = _DEFAULTS[config.FILE_KEYS[key]]
    if not isinstance(text, str):
        text = json.dumps(text)
    text = text.strip()
    if isinstance(default, bool):
        if text.lower() not in _TRUE | _FALSE:
            raise UsageError(f"{key} is true or false, not {text[:40]!r}")
        return text.lower() in _TRUE
    if isinstance(default, (int, float)):
        try:
            number: int | float = int(text) if isinstance(default, int) else float(text)
        except ValueError:
            kind = "a whole number" if isinstance(default, int) else "a number"
            raise UsageError(f"{key} must be {kind}, not {text[:40]!r}") from None
        if not math.isfinite(number) or number < 0 or (key in _POSITIVE and number == 0):
            raise UsageError(f"{key} must be {'above' if key in _POSITIVE else 'at least'} 0")
        return number
    if "\n" in text or "\r" in text:
        raise UsageError(f"{key} is one line of text")
    return text


def update(home: Path, changes: dict, allowed: tuple[str, ...] = CLI_KEYS) -> dict:
    """Write ``changes`` (setting -> text or value) into ``home``'s ``config.toml``.

    :returns: ``{"path", "changed": {key: [before, after]}}``; a key set to what it
      already was (or to its default, when the file does not set it) is left alone
    :raises UsageError: a setting outside ``allowed``, a bad value, or a file that would
      no longer load; then nothing is written
    """
    for key in changes:
        if key not in config.FILE_KEYS:
            value_of(key, "")  # refused as unknown, with the hint
    refused = sorted(set(changes) - set(allowed))
    if refused:
        raise UsageError(f"{', '.join(refused)}: not settable here",
                         hint=f"settable here: {', '.join(allowed)}; the others in "
                              "config.toml by hand")
    raw = read(home)
    unknown = sorted(set(raw) - set(config.FILE_KEYS))
    if unknown:
        raise UsageError(f"unknown setting(s) in {home / 'config.toml'}: {', '.join(unknown)}")
    new = {key: value_of(key, text) for key, text in changes.items()}
    before = {k: raw.get(k, _DEFAULTS[config.FILE_KEYS[k]]) for k in new}
    config.checked({config.FILE_KEYS[k]: v for k, v in {**raw, **new}.items()})
    path = home / "config.toml"
    changed = {k: [before[k], v] for k, v in new.items() if before[k] != v}
    if changed:  # a setting left as it was is not written (a default stays a default)
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        for key in changed:
            text = _set_line(text, key, new[key])
        _write(path, text)
    return {"path": str(path), "changed": changed}


def default(key: str):
    """Setting ``key``'s value when config.toml does not set it."""
    return _DEFAULTS[config.FILE_KEYS[key]]


def _set_line(text: str, key: str, value) -> str:
    """``text`` with ``key``'s line saying ``value`` (a TOML value: JSON's scalars are)."""
    line = f"{key} = {json.dumps(value)}"
    pattern = re.compile(rf"^[ \t]*{re.escape(key)}[ \t]*=.*$", re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda _: line, text, count=1)
    return text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"


def _write(path: Path, text: str) -> None:
    try:
        tomllib.loads(text)  # what was written must read back
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} would not read back ({exc}); nothing written") from None
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
