"""Which Tor network a tor process joins: the public one, or a private testnet.

A private network is described by a JSON file that :mod:`onionshare_bt.testnet`
writes::

    {"version": 1, "name": "testnet-17000",
     "client_options": [["TestingTorNetwork", "1"], ["DirAuthority", "..."], ...],
     "relay_options":  [["TestingTorNetwork", "1"], ["DirAuthority", "..."], ...]}

``client_options`` are the torrc lines a client needs to join it; ``relay_options`` the
lines an extra (non-exit) relay needs. Both are ordered (``DirAuthority`` repeats).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from onionshare_bt.errors import BadPath

__all__ = ["FORMAT_VERSION", "Network", "Options"]

FORMAT_VERSION = 1
Options = tuple[tuple[str, str], ...]


def _options(value: object, field: str, path: Path) -> Options:
    """Validate a JSON list of ``[key, value]`` string pairs."""
    if not isinstance(value, list):
        raise BadPath(f"{path}: {field} must be a list of [option, value] pairs")
    pairs = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(part, str) for part in item)
            or not item[0]
            or any("\n" in part for part in item)
        ):
            raise BadPath(f"{path}: {field} has an entry that is not [option, value]: {item!r}")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


@dataclass(frozen=True)
class Network:
    """A Tor network to join.

    :param name: ``"public"`` or the testnet's name
    :param client_options: torrc ``(option, value)`` lines for a client
    :param relay_options: torrc ``(option, value)`` lines for an extra relay
    :param bandwidth_file: a private network's ``V3BandwidthsFile``, where a relay that joins
      later is "measured" (the job of the bandwidth authorities on the real network); a
      relay left unmeasured cannot serve as anyone's guard there
    """

    name: str
    client_options: Options = ()
    relay_options: Options = ()
    bandwidth_file: str = ""

    @property
    def is_public(self) -> bool:
        """True for the real Tor network (no extra options)."""
        return not self.client_options and not self.relay_options

    @classmethod
    def public(cls) -> Network:
        """The real Tor network: tor's built-in authorities, no extra options.

        :returns: the public network
        """
        return cls(name="public")

    @classmethod
    def load(cls, path: Path | str) -> Network:
        """Read a network file written by the testnet.

        :param path: the ``network.json`` file
        :returns: the network it describes
        :raises BadPath: if the file is missing, unreadable, not JSON or not a network file
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BadPath(f"no network file at {path}", hint="Run: obt testnet up") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise BadPath(f"cannot read the network file {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise BadPath(f"{path} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise BadPath(f"{path} is not a network file (expected a JSON object)")
        if data.get("version") != FORMAT_VERSION:
            raise BadPath(f"{path}: unsupported network file version {data.get('version')!r}")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise BadPath(f"{path}: the network has no name")
        return cls(
            name=name,
            client_options=_options(data.get("client_options"), "client_options", path),
            relay_options=_options(data.get("relay_options"), "relay_options", path),
            bandwidth_file=str(data.get("bandwidth_file") or ""),
        )

    def to_dict(self) -> dict:
        """The JSON-ready form that :meth:`load` reads back.

        :returns: a dict with ``version``, ``name``, ``client_options``, ``relay_options``
        """
        return {
            "version": FORMAT_VERSION,
            "name": self.name,
            "client_options": [list(pair) for pair in self.client_options],
            "relay_options": [list(pair) for pair in self.relay_options],
            **({"bandwidth_file": self.bandwidth_file} if self.bandwidth_file else {}),
        }

    def to_json(self) -> str:
        """Serialise for a network file.

        :returns: indented JSON text ending in a newline
        """
        return json.dumps(self.to_dict(), indent=2) + "\n"
