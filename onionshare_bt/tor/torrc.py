"""Pure helpers shared by the client and the testnet: finding tor, writing torrc files,
reading tor's bootstrap status."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from onionshare_bt.errors import TorError, TorMissing
from onionshare_bt.tor.network import Network

__all__ = [
    "MAX_NICKNAME", "bootstrap_fields", "client_torrc", "find_tool", "find_tor", "log_tail",
    "parse_bootstrap", "render", "torrc_path", "valid_nickname",
]

#: tor's limit on ``Nickname``
MAX_NICKNAME = 19

_UNSAFE = re.compile(r'[\n\r#"\\]')
_NICKNAME = re.compile(r"[A-Za-z0-9]{1,19}")
_BOOTSTRAP = re.compile(r'(\w+)=("([^"]*)"|\S+)')


def valid_nickname(name: str) -> bool:
    """Tell whether tor accepts ``name`` as a relay nickname (1-19 letters and digits)."""
    return isinstance(name, str) and _NICKNAME.fullmatch(name) is not None


def find_tool(name: str, explicit: str | None = None) -> str:
    """Locate an executable.

    :param name: the program to look for on ``PATH`` (e.g. ``"tor"``)
    :param explicit: a path or program name that overrides the search
    :returns: the path of an executable file
    :raises TorMissing: if there is none
    """
    candidate = explicit or name
    if os.sep in candidate:
        path = Path(candidate).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise TorMissing(f"{candidate} is not an executable file")
    found = shutil.which(candidate)
    if found is None:
        raise TorMissing(f"{candidate} was not found on PATH")
    return found


def find_tor(explicit: str | None = None) -> str:
    """Locate the tor binary: **explicit**, else ``$OBT_TOR``, else ``tor`` on ``PATH``.

    :param explicit: a path or program name given by the caller
    :returns: the path of the tor executable
    :raises TorMissing: if it cannot be found or is not executable
    """
    return find_tool("tor", explicit or os.environ.get("OBT_TOR") or None)


def torrc_path(path: Path) -> str:
    """Render a path for a torrc value, refusing characters torrc would misread.

    :param path: a filesystem path
    :returns: the path as text
    :raises TorError: if it contains a newline, ``#``, ``"`` or a backslash
    """
    text = str(path)
    if _UNSAFE.search(text):
        raise TorError(f"tor cannot use a path containing newlines, '#', '\"' or '\\': {text!r}")
    return text


def render(options: Iterable[tuple[str, str]]) -> str:
    """Render ``(option, value)`` pairs as torrc text, one per line, in order.

    :param options: the pairs; an option may repeat
    :returns: the torrc text, ending in a newline
    :raises TorError: if a key or value contains a line break
    """
    lines = []
    for key, value in options:
        if not key or any(c in key + value for c in "\r\n") or " " in key:
            raise TorError(f"invalid torrc line: {key!r} {value!r}")
        lines.append(f"{key} {value}".rstrip())
    return "\n".join(lines) + "\n"


def log_tail(path: Path, lines: int = 4) -> str:
    """The last warnings or errors in a tor log, for error messages.

    :param path: the log file
    :returns: up to **lines** ``[err]`` lines (``[warn]`` lines when there are none),
      joined by newlines, or ``""``
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    errors = [line for line in text.splitlines() if "[err]" in line]
    if not errors:
        errors = [line for line in text.splitlines() if "[warn]" in line]
    return "\n".join(errors[-lines:])


def process_options(data_dir: Path, owner_pid: int) -> list[tuple[str, str]]:
    """What every tor process of a node has: its data dir, a cookie-authenticated control
    port on loopback written to a file, an owner, no GeoIP files, a log file."""
    empty = torrc_path(data_dir / "empty")
    return [
        ("DataDirectory", torrc_path(data_dir)),
        ("ControlPort", "127.0.0.1:auto"),
        ("ControlPortWriteToFile", torrc_path(data_dir / "control_port")),
        ("CookieAuthentication", "1"),
        ("__OwningControllerProcess", str(owner_pid)),
        ("GeoIPFile", empty),
        ("GeoIPv6File", empty),
        ("Log", f"notice file {torrc_path(data_dir / 'tor.log')}"),
    ]


def client_torrc(data_dir: Path, network: Network, owner_pid: int) -> str:
    """Build the client's torrc (pure).

    :param data_dir: tor's DataDirectory (also holds the log and the port file)
    :param network: the network to join; its ``client_options`` come last
    :param owner_pid: tor exits when this process does
    :returns: the torrc text
    """
    options = [
        *process_options(data_dir, owner_pid),
        ("SocksPort", "127.0.0.1:auto ExtendedErrors"),
        ("ClientOnly", "1"),
        # a node serving a hundred shares keeps two hundred onion services, each building
        # introduction circuits; tor's default of 32 pending circuits queues their publication
        ("MaxClientCircuitsPending", "128"),
    ]
    return render([*options, *network.client_options])


def parse_bootstrap(line: str) -> dict:
    """Parse ``status/bootstrap-phase`` (or a BOOTSTRAP event's arguments).

    :param line: e.g. ``NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"``
    :returns: ``{"progress": int, "summary": str, "tag": str, "warning": str | None}``
    """
    fields = {m.group(1): m.group(3) if m.group(3) is not None else m.group(2)
              for m in _BOOTSTRAP.finditer(line)}
    return bootstrap_fields(fields)


def bootstrap_fields(fields: dict[str, str]) -> dict:
    """Normalise a BOOTSTRAP status's keyword arguments.

    :param fields: e.g. ``{"PROGRESS": "100", "TAG": "done", "SUMMARY": "Done"}``
    :returns: ``{"progress": int, "summary": str, "tag": str, "warning": str | None}``
    """
    progress = fields.get("PROGRESS", "0")
    return {
        "progress": int(progress) if progress.isdigit() else 0,
        "summary": fields.get("SUMMARY", ""),
        "tag": fields.get("TAG", ""),
        "warning": fields.get("WARNING"),
    }
