"""What the swarm shows of its torrents: one found by id, its status, its paths and peers,
its .torrent, and the files a path would share.

Everything here reads the swarm's own state and parts, and nothing else: the node's
operations add what other parts know (the liveness watch's verdicts, ``obt play``'s
streams) on top (:class:`onionshare_bt.ops.torrents.TorrentOps`).
"""

from __future__ import annotations

from pathlib import Path

from ..engine.metainfo import select
from ..errors import UsageError
from ..store import TorrentRow
from .state import SwarmState

__all__ = ["find", "peers", "preview", "progress", "status", "torrent_file"]


def find(swarm: SwarmState, ident: str) -> TorrentRow:
    """The one torrent whose id starts with ``ident``.

    :raises UsageError: none or several match
    """
    rows = [r for r in swarm.store.torrents.all() if r.id.startswith(ident.lower())]
    if not ident or len(rows) != 1:
        raise UsageError(f"no single torrent matches id {ident!r}", hint="See: obt list")
    return rows[0]


def status(swarm: SwarmState, row: TorrentRow) -> dict:
    """One torrent as the swarm knows it: its row, its size, its onions, the engine's
    figures while the engine has it, the last announce error, a download's trackers."""
    out = {
        "id": row.id, "role": row.role, "name": row.name, "state": row.state,
        "size": swarm.meta(row).size, "uri": row.uri, "path": row.save_path,
        "error": row.error,
        "onions": [f"{o.address}.onion" for o in swarm.store.onions.of(row.id)],
        "open": bool(row.open),
    }
    if swarm.engine.has(row.id):
        st = swarm.engine.status(row.id)
        out.update(
            progress=st.progress, done=st.total_done, wanted=st.total_wanted,
            rate_down=st.rate_down, rate_up=st.rate_up, peers=st.connected,
            payload_down=st.payload_down, payload_up=st.payload_up, failed=st.failed,
        )
    out["announce_error"] = swarm.announce_errors.get(row.id)
    if row.role == "download":
        out["trackers"] = swarm.store.trackers.of(row.id)
    return out


def progress(swarm: SwarmState, torrent_id: str) -> dict | None:
    """Bytes done and wanted and peers connected, while the engine has the torrent."""
    if not swarm.engine.has(torrent_id):
        return None
    st = swarm.engine.status(torrent_id)
    return {"done": st.total_done, "wanted": st.total_wanted, "peers": st.connected}


def peers(swarm: SwarmState, row: TorrentRow) -> dict:
    """A torrent's paths (its bridges' counters) and the peers the engine sees."""
    engine = swarm.engine
    seen = engine.peers(row.id) if engine.has(row.id) else []
    growth = swarm.growth.get(row.id)
    return {"id": row.id, "paths": [p.as_dict() for p in swarm.bridges.counters(row.id)],
            "engine_peers": [p.__dict__ for p in seen],
            "growth": growth.describe() if growth is not None else None}


def torrent_file(swarm: SwarmState, row: TorrentRow) -> bytes:
    """A share's .torrent as its tracker serves it (naming its trackers), a download's as
    it was fetched."""
    data = swarm.tracker.torrent_file(row.id) if row.role == "share" else None
    return data or row.torrent


def preview(swarm: SwarmState, path: str, include_hidden: bool) -> dict:
    """The files sharing **path** would publish, chosen as a share chooses them."""
    chosen = select(Path(path), include_hidden=include_hidden,
                    forbidden=(swarm.config.home,))
    return {"path": str(chosen.root), "size": sum(f.size for f in chosen.files),
            "files": [{"path": f.path, "size": f.size} for f in chosen.files],
            "hidden_skipped": chosen.hidden_skipped}
