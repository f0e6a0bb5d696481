"""``obt config``: show the settings, and change config.toml's one-line ones."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .. import config, configfile
from ..errors import UsageError
from . import render as r
from .base import command, json_option


@click.group("config")
def config_group():
    """Show the node's settings, or change them in its config.toml."""


def _home(state) -> Path:
    return Path(state.home).expanduser().resolve() if state.home else config.default_home()


@config_group.command("show")
@json_option
@command
def show(state, as_json):
    """Every setting and the value a node started now would take (config.toml over the
    defaults; environment and flags over both)."""
    cfg = state.config
    values = {}
    for key, field in config.FILE_KEYS.items():
        value = getattr(cfg, field)
        values[key] = (str(value) if isinstance(value, Path)
                       else [list(v) if isinstance(v, tuple) else v for v in value]
                       if isinstance(value, tuple) else value)
    path = cfg.home / "config.toml"
    data = {"path": str(path), "settings": values,
            "file": sorted(configfile.read(cfg.home))}
    width = max(len(k) for k in values)
    lines = [f"{path}{'' if path.exists() else ' (none yet: every setting is its default)'}"]
    lines += [f"{k:<{width}}  {json.dumps(v)}{'  (config.toml)' if k in data['file'] else ''}"
              for k, v in values.items()]
    r.emit(data, as_json, "\n".join(lines))


@config_group.command("set")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY VALUE [KEY VALUE]...")
@json_option
@command
def set_(state, pairs, as_json):
    """Write settings into config.toml (a running node takes them when it restarts).

    Each value is read as its setting's kind: a whole number, a number, true/false or text.
    Nothing is written unless every value is good. Lists (tor_options, release_keys) are
    edited in the file by hand.
    """
    if len(pairs) % 2:
        raise UsageError("settings come in pairs: KEY VALUE",
                         hint="e.g. obt config set onions 3 stall_timeout 90")
    changes = dict(zip(pairs[::2], pairs[1::2]))
    info = configfile.update(_home(state), changes)
    said = [f"{k}: {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in info["changed"].items()]
    text = (f"{info['path']}\n" + "\n".join(said) if said
            else "nothing changed: every value was already so")
    r.emit(info, as_json, text)


COMMANDS = (config_group,)
