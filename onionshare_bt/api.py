"""The operations the control API offers (``op_<name>``), as a mixin of the node.

Each takes JSON-typed keyword arguments (checked against these signatures by
:func:`onionshare_bt.control.ops_validator`) and returns a JSON-ready value.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time

from . import __version__, torrents
from .errors import TorError, UsageError
from .uri import parse_uri


class ControlOps:
    """Mixed into :class:`onionshare_bt.node.Node`, whose parts it uses."""

    # -- control API --------------------------------------------------------------------
    async def handle(self, op: str, args: dict):
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise UsageError(f"unknown control operation {op!r}")
        return await handler(**args)

    async def op_share(self, path: str, onions: int | None = None,
                       include_hidden: bool = False, open: bool | None = None,
                       scrub: bool = False) -> dict:
        return await torrents.share(self.parts, path, onions, include_hidden, open_share=open,
                                    scrub=scrub)

    async def op_open(self, id: str, open: bool) -> dict:
        """Open a share to standard BitTorrent clients, or close it again."""
        row = torrents.set_open(self.parts, self._find(id), open)
        return {"id": row.id, "name": row.name, "uri": row.uri, "open": bool(row.open)}

    async def op_torrent_file(self, id: str) -> dict:
        """A torrent's .torrent, base64: a share's as its tracker serves it (naming its
        trackers), a download's as it was fetched."""
        row = self._find(id)
        data = self.parts.tracker.torrent_file(row.id) if row.role == "share" else None
        return {"id": row.id, "name": row.name, "role": row.role, "open": bool(row.open),
                "torrent": base64.b64encode(data or row.torrent).decode()}

    async def op_get(self, uri: str, target: str, timeout: float | None = None) -> dict:
        return await torrents.get(self.parts, uri, target, timeout)

    async def op_torrent(self, id: str) -> dict:
        row = self._find(id)
        return self._describe(row)

    async def op_list(self) -> list[dict]:
        return [self._describe(row) for row in self.parts.store.torrents.all()]

    async def op_peers(self, id: str) -> dict:
        row = self._find(id)
        engine = self.parts.engine
        peers = engine.peers(row.id) if engine.has(row.id) else []
        return {
            "id": row.id,
            "paths": [p.as_dict() for p in self.parts.bridges.counters(row.id)],
            "engine_peers": [p.__dict__ for p in peers],
        }

    async def op_play(self, id: str, file: str | None = None) -> dict:
        """A loopback URL for one file of a torrent, served while it downloads."""
        row = self._find(id)
        played = self.stream.play(row.id, file, complete=_complete(row))
        return {"id": row.id, "name": row.name, "state": row.state, **played}

    async def op_unshare(self, id: str, onion: str | None = None) -> dict:
        row = self._find(id)
        if row.role != "share":
            raise UsageError(f"{row.name!r} is a download; use 'obt remove' for it")
        if onion:
            return await torrents.withdraw_onion(self.parts, row, onion)
        result = await torrents.remove(self.parts, row, delete_data=False)
        self.stream.forget(row.id)
        self.origin.catalogue_changed()
        return result

    async def op_remove(self, id: str, delete_data: bool = False) -> dict:
        result = await torrents.remove(self.parts, self._find(id), delete_data)
        self.stream.forget(result["id"])
        self.origin.catalogue_changed()
        return result

    async def op_status(self) -> dict:
        tor = self.parts.tor
        try:
            boot = await tor.bootstrap_status()
        except TorError as exc:  # tor died; the watchdog is restarting it
            boot = {"progress": 0, "summary": f"tor is down: {exc.message}", "tag": "down"}
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(time.time() - self.started, 1),
            "home": str(self.config.home),
            "network": str(self.config.network_file or "tor"),
            "tor": {"pid": tor.pid, "bootstrap": boot, "socks": list(tor.socks_address),
                    "restarts": self.tor_restarts},
            "engine": {"listen_port": self.parts.engine.listen_port},
            "onions": len(self.parts.store.onions.all()),
            "torrents": len(self.parts.store.torrents.all()),
            "bridges": self.parts.bridges.usage(),
            **self.health(),
        }

    async def op_relay_status(self) -> dict:
        relay = self.relay
        info = {
            "enabled": relay.enabled, "fingerprint": relay.fingerprint or None,
            "nickname": relay.settings.nickname if relay.enabled else None,
            "relayed_today": relay.relayed_today(), "relayed_total": relay.ledger.relayed,
            "rate_limit": relay.settings.bandwidth_rate if relay.enabled else None,
            "burst_limit": relay.settings.bandwidth_burst if relay.enabled else None,
            "in_consensus": False, "flags": [], "restarts": relay.restarts,
            "pid": None, "or_address": None,
        }
        if relay.tor is not None and relay.tor.is_alive():
            flags = await self.parts.tor.relay_flags(relay.fingerprint)
            info.update(in_consensus=flags is not None, flags=flags or [], pid=relay.tor.pid,
                        or_address=await relay.tor.or_address())
        return info

    async def op_ratio(self) -> dict:
        return {**self.relay.allowance().as_dict(), "relay": self.relay.enabled,
                "gated": sorted(self.gated)}

    # -- identity, catalogue, trust ----------------------------------------------------
    async def op_node_id(self) -> dict:
        return {"onion": f"{self.trust.onion}.onion", "public_uri": self.trust.public_uri}

    async def op_publish(self, id: str, public: bool) -> dict:
        return self.trust.publish(self._find(id), public)

    async def op_published(self) -> dict:
        return {"public_uri": self.trust.public_uri, "items": self.trust.catalogue()}

    async def op_catalogue(self, uri: str) -> dict:
        parsed = parse_uri(uri)
        if parsed.kind != "public":
            raise UsageError("that is not a public catalogue URI (…/public/<token>)")
        items = await self.trust.remote_catalogue(parsed.onion, parsed.token)
        return {"node": f"{parsed.onion}.onion", "items": items}

    async def op_trust(self, action: str, onion: str | None = None,
                       depth: int | None = None) -> dict | list:
        trust = self.trust
        if action == "add":
            return trust.add(onion or "")
        if action == "remove":
            return trust.remove(onion or "")
        if action == "depth":
            return {"depth": trust.depth(depth)}
        if action == "list":
            return {"depth": trust.depth(), "trusted": [f"{o}.onion" for o in
                                                        self.parts.store.trust.all()]}
        if action == "graph":
            return await trust.graph()
        raise UsageError(f"unknown trust action {action!r}")

    async def op_search(self, terms: list) -> dict:
        if not terms or not all(isinstance(t, str) and t.strip() for t in terms):
            raise UsageError("search needs at least one term")
        return await self.trust.search([t.strip() for t in terms])

    # -- mirrors ------------------------------------------------------------------------
    async def op_mirror(self, action: str, onion: str | None = None,
                        follow: bool = False) -> dict | list:
        if action == "add":
            return await self.mirrors.add(onion or "", follow)
        if action == "remove":
            return await self.mirrors.remove(onion or "")
        if action == "list":
            return self.mirrors.list()
        raise UsageError(f"unknown mirror action {action!r}")

    # -- releases -----------------------------------------------------------------------
    async def op_release(self, action: str, folder: str | None = None,
                         id: str | None = None) -> dict | list:
        if action == "publish":
            return await self.releases.publish(folder or "")
        if action == "list":
            return self.releases.list()
        if action == "show":
            return self.releases.find(id or "")
        raise UsageError(f"unknown release action {action!r}")

    async def op_update_check(self) -> dict:
        return await self.releases.check()

    async def op_stop(self) -> dict:
        asyncio.get_running_loop().call_soon(self.stop)
        return {"stopping": True, "pid": os.getpid()}

    def _find(self, ident: str):
        rows = [r for r in self.parts.store.torrents.all() if r.id.startswith(ident.lower())]
        if not ident or len(rows) != 1:
            raise UsageError(f"no single torrent matches id {ident!r}", hint="See: obt list")
        return rows[0]

    def _describe(self, row) -> dict:
        meta = self.parts.meta(row)
        out = {
            "id": row.id, "role": row.role, "name": row.name, "state": row.state,
            "size": meta.size, "uri": row.uri, "path": row.save_path, "error": row.error,
            "onions": [f"{o.address}.onion" for o in self.parts.store.onions.of(row.id)],
            "open": bool(row.open),
        }
        if self.parts.engine.has(row.id):
            st = self.parts.engine.status(row.id)
            out.update(
                progress=st.progress, done=st.total_done, wanted=st.total_wanted,
                rate_down=st.rate_down, rate_up=st.rate_up, peers=st.connected,
                payload_down=st.payload_down, payload_up=st.payload_up,
            )
            if row.state == "downloading" and row.id in self.gated:
                out["state"] = "waiting for relay credit"
            elif row.state == "downloading" and row.id in self.stalled:
                out["state"] = "stalled"
            elif row.state == "downloading" and st.connected == 0:
                out["state"] = "waiting for peers"
            if row.role == "download":  # obt play: what plays, and how far ahead of readers
                out["stream"] = self.stream.describe(row.id, complete=_complete(row))
        out["announce_error"] = self.parts.announce_errors.get(row.id)
        if row.role == "download":
            out["trackers"] = self.parts.store.trackers.of(row.id)
            out["reason"] = self.reasons.get(row.id)
        return out


def _complete(row) -> bool:
    """The torrent holds every piece (a share, or a download moved into place)."""
    return row.role == "share" or row.state == "complete"
