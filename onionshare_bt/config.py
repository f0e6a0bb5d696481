"""Where a node keeps its state, and the settings it runs with.

Precedence: command-line flag > environment variable > ``<home>/config.toml`` > defaults.
One environment variable, ``OBT_HOME``, relocates every path (tests run several nodes side by
side that way). ``OBT_NETWORK`` names a private network file written by ``obt testnet up``;
without it the node joins the public Tor network.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path

from .errors import UsageError
from .onion import MAX_ONIONS
from .text import hex_bytes
from .tor.torrc import valid_nickname

#: the BitTorrent port every obt onion service publishes (virtual port of the onion)
PEER_VIRTUAL_PORT = 6881
#: the tracker's virtual port on every onion
TRACKER_VIRTUAL_PORT = 80
#: the most paths ``max_paths`` may let one download grow to
MAX_PATHS = 32


def default_home() -> Path:
    """The node's home: ``$OBT_HOME`` or the platform's user data dir."""
    env = os.environ.get("OBT_HOME")
    if env:
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("obt", appauthor=False))


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a node needs to know at start-up.

    :param home: the node's state folder (0700)
    :param network_file: private network description, or None for the public Tor network
    :param tor_binary: path of tor, or None to search ``$PATH``
    :param onions: onion services per share (K)
    :param fetch_timeout: seconds to wait for a remote tracker or .torrent through Tor
    :param bootstrap_timeout: seconds to wait for the node's tor to bootstrap
    :param announce_interval: seconds between announces we ask of peers, and make ourselves
    :param stall_timeout: seconds without payload progress before a download is called stalled
    :param open_shares: new shares admit standard BitTorrent clients (``obt share --open``)
    :param player: the media player ``obt play`` starts (a command line); empty: the first
        of mpv, vlc, ffplay on ``PATH``
    :param download_rate: cap on the node's download rate in bytes/s (0: none); the ratio
        gate may cap it lower
    :param upload_rate: cap on the node's upload rate in bytes/s (0: none): what its shares
        and seed-backs send to all downloaders together
    :param max_paths: the most paths a download grows to, one circuit more at a time while
        each adds 15 % to its rate (:mod:`.multiplex.growth`); 0 or 1: no growth, one path
        per onion its trackers name
    """

    home: Path
    network_file: Path | None = None
    tor_binary: str | None = None
    onions: int = 2
    fetch_timeout: float = 120.0
    bootstrap_timeout: float = 120.0
    announce_interval: int = 60
    stall_timeout: float = 120.0
    relay: bool = True
    #: empty: a random nickname drawn once per node (see :mod:`.relay.nickname`)
    relay_nickname: str = ""
    relay_port: str = "auto"
    relay_rate: int = 1024 * 1024
    relay_burst: int = 2 * 1024 * 1024
    relay_contact: str = ""
    free_base: int = 1024**3
    ratio: float = 1.0
    tor_options: tuple = ()
    publish_trust: bool = True
    trust_fan_out: int = 32
    trust_total: int = 256
    trust_timeout: float = 30.0
    #: maintainer keys (hex ed25519) releases must be signed with; tests use their own
    release_keys: tuple = ()
    open_shares: bool = False
    player: str = ""
    download_rate: int = 0
    upload_rate: int = 0
    max_paths: int = 8

    @property
    def release_dir(self) -> Path:
        return self.home / "releases"

    @property
    def relay_dir(self) -> Path:
        return self.home / "relay"

    @property
    def socket_path(self) -> Path:
        return self.home / "node.sock"

    @property
    def db_path(self) -> Path:
        return self.home / "state.sqlite3"

    @property
    def tor_dir(self) -> Path:
        return self.home / "tor"

    @property
    def engine_dir(self) -> Path:
        return self.home / "engine"

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"

    @property
    def pid_path(self) -> Path:
        return self.home / "node.pid"

    @property
    def relay_notice_path(self) -> Path:
        """Marker: the relay's trade-off has been shown for this home."""
        return self.home / "relay-notice-shown"

    def env(self) -> dict[str, str]:
        """Environment that makes a child ``obt`` process load this same config."""
        env = {"OBT_HOME": str(self.home)}
        if self.network_file:
            env["OBT_NETWORK"] = str(self.network_file)
        if self.tor_binary:
            env["OBT_TOR"] = self.tor_binary
        return env


FILE_KEYS = {
    "network": "network_file",
    "tor": "tor_binary",
    "onions": "onions",
    "fetch_timeout": "fetch_timeout",
    "bootstrap_timeout": "bootstrap_timeout",
    "announce_interval": "announce_interval",
    "stall_timeout": "stall_timeout",
    "relay": "relay",
    "relay_nickname": "relay_nickname",
    "relay_port": "relay_port",
    "relay_rate": "relay_rate",
    "relay_burst": "relay_burst",
    "relay_contact": "relay_contact",
    "free_base": "free_base",
    "ratio": "ratio",
    "tor_options": "tor_options",
    "publish_trust": "publish_trust",
    "trust_fan_out": "trust_fan_out",
    "trust_total": "trust_total",
    "trust_timeout": "trust_timeout",
    "release_keys": "release_keys",
    "open_shares": "open_shares",
    "player": "player",
    "download_rate": "download_rate",
    "upload_rate": "upload_rate",
    "max_paths": "max_paths",
}


def _from_file(home: Path) -> dict:
    path = home / "config.toml"
    if not path.exists():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    unknown = set(raw) - set(FILE_KEYS)
    if unknown:
        raise UsageError(f"unknown setting(s) in {path}: {', '.join(sorted(unknown))}")
    return {FILE_KEYS[k]: v for k, v in raw.items()}


def load(home: Path | None = None, network: str | None = None, **flags) -> Config:
    """Build the config from flags, environment, config file and defaults.

    :param home: the ``--home`` flag, if given
    :param network: the ``--network`` flag, if given
    :param flags: other flag values; ``None`` means not given
    :raises UsageError: on an unreadable config file or a bad value
    """
    home = Path(home).expanduser().resolve() if home else default_home()
    values: dict = _from_file(home)
    if os.environ.get("OBT_NETWORK"):
        values["network_file"] = os.environ["OBT_NETWORK"]
    if os.environ.get("OBT_TOR"):
        values["tor_binary"] = os.environ["OBT_TOR"]
    if network:
        values["network_file"] = network
    values.update({k: v for k, v in flags.items() if v is not None})
    if values.get("network_file"):
        values["network_file"] = Path(values["network_file"]).expanduser().resolve()
    return Config(home=home, **checked(values))


def checked(values: dict) -> dict:
    """``values`` (Config field -> value) with the settings that need it normalised.

    :raises UsageError: a value no node can run with
    """
    values = dict(values)
    if "tor_options" in values:
        values["tor_options"] = _tor_options(values["tor_options"])
    if "release_keys" in values:
        values["release_keys"] = _release_keys(values["release_keys"])
    if "relay_port" in values:
        values["relay_port"] = str(values["relay_port"])
    if values.get("relay_nickname"):
        values["relay_nickname"] = _nickname(values["relay_nickname"])
    if not isinstance(values.get("open_shares", False), bool):
        raise UsageError("open_shares must be true or false")
    if not isinstance(values.get("player", ""), str):
        raise UsageError('player must be a command line in quotes, e.g. player = "mpv"')
    for key in ("download_rate", "upload_rate"):
        rate = values.get(key, 0)
        if not isinstance(rate, int) or isinstance(rate, bool) or rate < 0:
            raise UsageError(f"{key} must be a number of bytes per second (0: no cap)")
    paths = values.get("max_paths", 8)
    if not isinstance(paths, int) or isinstance(paths, bool) or not 0 <= paths <= MAX_PATHS:
        raise UsageError(f"max_paths must be a number from 0 to {MAX_PATHS} (0: no growth)")
    onions = int(values.get("onions", 2))
    if not 1 <= onions <= MAX_ONIONS:
        raise UsageError(f"onions must be between 1 and {MAX_ONIONS}, not {onions}")
    return values


def _tor_options(raw) -> tuple[tuple[str, str], ...]:
    """``tor_options = [["EntryNodes", "$FP"], ...]`` from the config file, checked."""
    try:
        pairs = tuple((str(k), str(v)) for k, v in raw)
    except (TypeError, ValueError) as exc:
        raise UsageError("tor_options must be a list of [option, value] pairs") from exc
    if any(not k.isalnum() for k, _ in pairs):
        raise UsageError("tor_options names must be plain torrc option names")
    return pairs


def _release_keys(raw) -> tuple[str, ...]:
    """``release_keys = ["<64 hex>", ...]``: the maintainer keys to trust instead of the
    shipped ones."""
    if not isinstance(raw, list) or not raw:
        raise UsageError("release_keys must be a non-empty list of hex ed25519 public keys")
    keys = [hex_bytes(str(k), 32) for k in raw]  # as release.signing.parse_public_key reads them
    if None in keys:
        raise UsageError("a maintainer public key is 64 hex characters")
    return tuple(k.hex() for k in keys)


def _nickname(raw) -> str:
    """``relay_nickname = "..."``: what tor accepts (1-19 letters and digits)."""
    if not valid_nickname(raw):
        raise UsageError(f"relay_nickname must be 1 to 19 letters and digits, not {raw!r}",
                         hint="Leave it out for a random one drawn for this node.")
    return raw
