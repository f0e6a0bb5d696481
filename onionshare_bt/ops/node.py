"""The node's own operations: status, stop, the relay and the ratio."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .. import __version__, configfile, torrents
from ..config import Config
from ..errors import TorError
from . import requests as rq
from . import results as rs

if TYPE_CHECKING:
    from ..relay.driver import Relay


class Lifetime(Protocol):
    """What the node operations see of the node itself (:class:`~onionshare_bt.node.Node`)."""

    #: when the node started (``time.time()``)
    started: float
    #: how often the tor watchdog restarted tor
    tor_restarts: int

    def health(self) -> dict:
        """Vital signs merged into ``status``."""

    def stop(self) -> None:
        """Ask the node to stop."""


class NodeOps:
    """:param gated: ids of downloads waiting for relay credit (the node's ledger keeps it)"""

    def __init__(self, config: Config, swarm: torrents.Swarm, relay: Relay, gated: Set[str],
                 lifetime: Lifetime) -> None:
        self.config, self.swarm, self.relay = config, swarm, relay
        self.gated, self.lifetime = gated, lifetime

    async def status(self, req: rq.Status) -> rs.StatusInfo:
        tor = self.swarm.tor
        onions = self.swarm.store.onions.all()
        publication = tor.publication(o.address for o in onions)
        try:
            boot = await tor.bootstrap_status()
        except TorError as exc:  # tor died; the watchdog is restarting it
            boot = {"progress": 0, "summary": f"tor is down: {exc.message}", "tag": "down"}
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(time.time() - self.lifetime.started, 1),
            "home": str(self.config.home),
            "network": str(self.config.network_file or "tor"),
            "tor": {"pid": tor.pid, "bootstrap": boot, "socks": list(tor.socks_address),
                    "restarts": self.lifetime.tor_restarts, "renewed_onions": tor.renewed,
                    "uploads_behind": tor.uploads_behind},
            "engine": {"listen_port": self.swarm.engine.listen_port},
            "onions": len(onions),
            "published": publication["published"],
            "publishing": publication,
            "torrents": len(self.swarm.store.torrents.all()),
            "bridges": self.swarm.bridges.usage(),
            **self.lifetime.health(),
        }

    async def stop(self, req: rq.Stop) -> rs.StopInfo:
        asyncio.get_running_loop().call_soon(self.lifetime.stop)
        return {"stopping": True, "pid": os.getpid()}

    async def relay_status(self, req: rq.RelayStatus) -> rs.RelayStatusInfo:
        relay = self.relay
        info: rs.RelayStatusInfo = {
            "enabled": relay.enabled, "fingerprint": relay.fingerprint or None,
            "nickname": relay.settings.nickname if relay.enabled else None,
            "relayed_today": relay.relayed_today(), "relayed_total": relay.ledger.relayed,
            "rate_limit": relay.settings.bandwidth_rate if relay.enabled else None,
            "burst_limit": relay.settings.bandwidth_burst if relay.enabled else None,
            "in_consensus": False, "flags": [], "restarts": relay.restarts,
            "pid": None, "or_address": None,
            "history": [[round(t, 1), round(r)] for t, r in relay.history.rates()],
        }
        if relay.tor is not None and relay.tor.is_alive():
            flags = await self.swarm.tor.relay_flags(relay.fingerprint)
            info.update(in_consensus=flags is not None, flags=flags or [], pid=relay.tor.pid,
                        or_address=await relay.tor.or_address())
        return info

    async def settings_set(self, req: rq.SettingsSet) -> dict:
        """Change config.toml for the next start (:func:`.configfile.update`)."""
        return await asyncio.to_thread(configfile.update, self.config.home, req.values,
                                       configfile.UI_KEYS)

    async def settings(self, req: rq.Settings) -> dict:
        """Every setting by name, JSON-ready (paths as text, tuples as lists), and ``file``:
        what config.toml sets now."""
        out: dict = {"file": await asyncio.to_thread(configfile.read, self.config.home)}
        for field in dataclasses.fields(self.config):
            value = getattr(self.config, field.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            out[field.name] = value
        return out

    async def ratio(self, req: rq.Ratio) -> rs.RatioInfo:
        return {**self.relay.allowance().as_dict(), "relay": self.relay.enabled,
                "gated": sorted(self.gated)}
