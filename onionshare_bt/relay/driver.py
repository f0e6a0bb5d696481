"""The relay's driver: runs the relay tor, samples its counters into the ledger, gates
downloads by the allowance. The arithmetic lives in :mod:`.core`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import secrets
import time
from pathlib import Path

from ..errors import ObtError
from ..store import LedgerRow, Store
from ..tor.network import Network
from ..tor.relay import RelaySettings, RelayTor, fingerprint_of
from ..tor.torrc import find_tor
from .core import Allowance, Ledger, RateHistory, Sample, advance, count_downloads
from .nickname import random_nickname, valid_nickname

log = logging.getLogger(__name__)

#: where the node's drawn relay nickname is kept, in the relay's data folder (0600)
NICKNAME_FILE = "nickname"


@dataclasses.dataclass(frozen=True)
class RatioSettings:
    free_base: int = 1024**3
    ratio: float = 1.0


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


class Relay:
    """The node's relay process and its ledger.

    :param enabled: False runs no relay; the allowance is then the free base alone
    """

    def __init__(self, data_dir: Path, network: Network, store: Store, settings: RelaySettings,
                 ratio: RatioSettings, *, enabled: bool, tor_binary: str | None,
                 bootstrap_timeout: float) -> None:
        self.data_dir, self.network, self.store = data_dir, network, store
        self.settings, self.ratio, self.enabled = settings, ratio, enabled
        self.tor_binary, self.bootstrap_timeout = tor_binary, bootstrap_timeout
        self.tor: RelayTor | None = None
        self.fingerprint = ""
        self.restarts = 0
        self._boot = ""
        self._downloads: dict[str, int] = {}
        saved = store.ledger.load()
        self.ledger = Ledger(boot=saved.boot, last_written=saved.last_written,
                             relayed=saved.relayed)
        self.used = saved.used
        #: the relayed-bytes counter over the last hour, for the rate chart
        self.history = RateHistory()

    async def prepare(self) -> str:
        """Create the relay's keys; returns its fingerprint (before anything starts).

        A relay without a configured nickname gets this node's drawn one (see
        :func:`node_nickname`).
        """
        if self.enabled:
            if not self.settings.nickname:
                nickname = await asyncio.to_thread(node_nickname, self.data_dir)
                self.settings = dataclasses.replace(self.settings, nickname=nickname)
            binary = find_tor(self.tor_binary)
            self.fingerprint = await asyncio.to_thread(fingerprint_of, self.data_dir, binary)
        return self.fingerprint

    async def start(self) -> None:
        if not self.enabled:
            return
        tor = RelayTor(self.data_dir, self.network, self.settings, tor_binary=self.tor_binary,
                       bootstrap_timeout=self.bootstrap_timeout)
        await tor.start()
        self.tor, self._boot = tor, secrets.token_hex(8)
        if self.network.bandwidth_file:
            _measure(Path(self.network.bandwidth_file), self.fingerprint)

    async def close(self) -> None:
        if self.tor is not None:
            await self.sample()
            await self.tor.close()
            self.tor = None

    async def sample(self) -> None:
        """Fold the relay's counters into the ledger (restarting a relay that died)."""
        if self.tor is None:
            return
        if not self.tor.is_alive():
            log.error("the relay tor (pid %s) died; restarting it", self.tor.pid)
            await self.tor.close()
            self.tor = None
            await self.start()
            self.restarts += 1
        try:
            _, written = await self.tor.traffic()
        except ObtError as exc:
            log.warning("cannot read the relay's counters: %s", exc.message)
            return
        self.ledger, added = advance(self.ledger, Sample(self._boot, written))
        self._save(added)
        self.history.add(time.time(), self.ledger.relayed)

    def count_downloads(self, payload: dict[str, int]) -> None:
        """Add the downloads' new payload bytes to what the node has used."""
        self._downloads, added = count_downloads(self._downloads, payload)
        if added:
            self.used += added
            self._save(0)

    def _save(self, relayed: int) -> None:
        self.store.ledger.save(LedgerRow(self.ledger.boot, self.ledger.last_written,
                                         self.ledger.relayed, self.used), _today(), relayed)

    def allowance(self) -> Allowance:
        relayed = self.ledger.relayed if self.enabled else 0
        return Allowance(self.ratio.free_base, self.ratio.ratio, relayed, self.used)

    def relayed_today(self) -> int:
        return self.store.ledger.relayed_on(_today())


def node_nickname(data_dir: Path) -> str:
    """This node's relay nickname: drawn once at random, then read back from
    ``<data_dir>/nickname`` (0600), so that it stays the same across restarts.

    A missing or unreadable file, or one holding no valid nickname, is replaced by a new draw.
    """
    path = data_dir / NICKNAME_FILE
    try:
        name = path.read_text(encoding="ascii").strip()
        if valid_nickname(name):
            return name
    except (OSError, UnicodeError):
        pass  # none yet, or damaged: draw one
    name = random_nickname(secrets.SystemRandom())
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{NICKNAME_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(name + "\n")
    os.replace(tmp, path)
    return name


def _measure(path: Path, fingerprint: str, weight: int = 1000) -> None:
    """Give our relay a measured weight on a private network (see ``Network``)."""
    line = f"node_id=${fingerprint} bw={weight}"
    try:
        text = path.read_text()
        if line not in text.splitlines():
            with open(path, "a", encoding="ascii") as f:
                f.write(("" if text.endswith("\n") or not text else "\n") + line + "\n")
    except OSError as exc:
        log.warning("cannot register the relay with the private network: %s", exc)
