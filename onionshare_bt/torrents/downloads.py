"""Downloads: a share's .torrent fetched through Tor, its files fetched into a hidden
staging folder inside the target, moved into place only once every piece is verified.

Starting (or re-attaching to) a download, seed-back onions, pausing and resuming, and
bringing one back after a restart; its announces are :mod:`.announce`'s.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from ..config import PEER_VIRTUAL_PORT
from ..engine.metainfo import Metainfo, parse
from ..engine.settings import handshake, torrent_handshake
from ..tor.http import isolation_key
from ..tracker.metafile import share_onions
from ..errors import BadPath, NodeError, UsageError
from ..multiplex.core import share_alias
from ..store import OnionRow, TorrentRow
from ..uri import ShareURI, parse_uri
from .announce import announce_stopped, start_announcing
from .onions import new_onions, publish
from .state import SwarmState

STAGING_PREFIX = ".obt-incomplete-"


def _check_target(target: Path, name: str) -> Path:
    target = target.expanduser().resolve()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadPath(f"cannot create {target}: {exc.strerror}") from exc
    if not target.is_dir() or not os.access(target, os.W_OK | os.X_OK):
        raise BadPath(f"{target}: not a writable folder")
    if (target / name).exists():
        raise BadPath(
            f"{target / name} already exists; obt never overwrites",
            hint="Choose another folder with -o, or move the existing one away.",
        )
    return target


async def get(swarm: SwarmState, text: str, target: str, timeout: float | None) -> dict:
    """Start (or re-attach to) a download; returns when its metadata is in the engine."""
    uri = parse_uri(text)
    if uri.kind != "private":
        raise UsageError("public catalogue URIs are not supported by this version of obt")
    existing = swarm.store.torrents.find_download(str(uri))
    if existing is not None:
        return describe_download(swarm, existing)
    # the share's own onion is one of its peers: a stream to it rides the circuit the
    # .torrent comes on, our handshake goes out on it at once, naming the share by the
    # alias of the URI's token (obt's shares are v1+v2 hybrids: so do we), and the first
    # path to it takes the stream (:func:`start_download`)
    swarm.bridges.ahead.dial(uri.onion, PEER_VIRTUAL_PORT, isolation=isolation_key(str(uri)))
    swarm.bridges.ahead.handshake(uri.onion, PEER_VIRTUAL_PORT,
                                  handshake(share_alias(uri.token), has_v2=True))
    try:
        data = await swarm.http.fetch_torrent(uri, timeout or swarm.config.fetch_timeout)
        meta = parse(data)
        swarm.bridges.ahead.name(uri.onion, PEER_VIRTUAL_PORT, torrent_handshake(meta))
        # the share's other onions, as its .torrent names them: dialled now, not once the
        # first announce named them and libtorrent's next round of attempts came
        others = tuple(o for o in share_onions(data, uri.token) if o != uri.onion)
        return await start_download(swarm, uri, meta, Path(target), others=others)
    except BaseException:
        swarm.bridges.ahead.forget(uri.onion, PEER_VIRTUAL_PORT)
        raise


async def start_download(swarm: SwarmState, uri: ShareURI, meta: Metainfo, target: Path,
                         seed: bool = True, others: tuple[str, ...] = ()) -> dict:
    """Download ``meta`` from the share at ``uri`` into ``target``.

    :param seed: publish seed-back onions now; without them the download only observes the
      swarm: it is never listed, nobody can dial it, and trackers give it seeders only, who
      want nothing from it (a release until it is verified: see :func:`seed_back`)
    :param others: the share's other onions (its .torrent names them), dialled with the
      share's own at once
    """
    if swarm.store.torrents.get(meta.id) is not None:
        raise UsageError(f"this node already has {meta.name!r} (id {meta.id[:16]})")
    dest = _check_target(target, meta.name)
    staging = dest / f"{STAGING_PREFIX}{meta.id[:16]}"
    staging.mkdir(exist_ok=True)
    rows = (await new_onions(swarm, meta, swarm.config.onions, "seed", None, wait=False)
            if seed else [])
    row = TorrentRow(
        id=meta.id, role="download", name=meta.name, save_path=str(staging), target=str(dest),
        torrent=meta.data, token=uri.token, uri=str(uri), state="downloading", error=None,
        resume=None, added=time.time(), completed=None,
    )
    swarm.store.torrents.add(row, rows)
    # libtorrent dials the share's own onion as the torrent starts, without waiting for the
    # first announce's reply (which names it with the share's other onions); into a folder
    # that holds something already (an earlier attempt's), it checks that first and dials
    # at its next round. A URI whose onion serves no peers (a mirror's) costs one failed dial.
    endpoint = await _share_endpoint(swarm, row.id, uri.onion)
    peers = [endpoint] if endpoint is not None else []
    for onion in others:
        other = await _share_endpoint(swarm, row.id, onion)
        if other is not None and swarm.bridges.dial_ahead(row.id, onion, PEER_VIRTUAL_PORT,
                                                          torrent_handshake(meta)):
            peers.append(other)
    fresh = endpoint is not None and not any(staging.iterdir())
    swarm.engine.add(meta, staging, dial=tuple(peers) if fresh else ())
    if not fresh:
        for peer in peers:
            swarm.engine.connect(row.id, peer)
    start_announcing(swarm, row)
    return describe_download(swarm, row)


async def _share_endpoint(swarm: SwarmState, torrent_id: str,
                          onion: str) -> tuple[str, int] | None:
    """The bridge endpoint for one of the share's onions (None when every one is busy: the
    announces will find room or not)."""
    try:
        return await swarm.bridges.outbound(torrent_id, onion, PEER_VIRTUAL_PORT)
    except NodeError:
        return None


async def seed_back(swarm: SwarmState, row: TorrentRow) -> list[OnionRow]:
    """Publish seed-back onions for a download that had none, and announce them."""
    meta = swarm.meta(row)
    rows = await new_onions(swarm, meta, swarm.config.onions, "seed", None, wait=False)
    for onion in rows:
        swarm.store.onions.add(onion)
    start_announcing(swarm, row)
    return rows


async def restore_download(swarm: SwarmState, row: TorrentRow) -> None:
    """Bring a download back; a paused one comes back paused, and does not announce."""
    meta = swarm.meta(row)
    await publish(swarm, meta, swarm.store.onions.of(meta.id), None)
    paused = row.state == "paused"
    swarm.engine.add(meta, Path(row.save_path), resume=row.resume, paused=paused)
    if row.state == "moving":  # stopped between verification and the move: do it now
        swarm.engine.move(meta.id, Path(row.target))
    if not paused:
        start_announcing(swarm, row)


def pause(swarm: SwarmState, row: TorrentRow) -> TorrentRow:
    """Pause a download: libtorrent stops it (and hangs up on its peers), the store says
    "paused" (so a restarted node keeps it paused), and the announce loop ends with one
    ``stopped`` announce, so trackers stop listing an onion that serves nothing.

    :raises UsageError: a share, or a download that is not downloading (complete, being
      moved into place, failed), or one that holds every piece already
    """
    if row.role != "download":
        raise UsageError(f"{row.name!r} is a share; only a download is paused")
    if row.state != "downloading":
        raise UsageError(f"{row.name!r} is {row.state}; only a download in progress is paused")
    st = swarm.engine.status(row.id)
    if st.total_wanted and st.total_done >= st.total_wanted:
        raise UsageError(f"{row.name!r} has every piece already; it is being completed")
    swarm.engine.pause(row.id)
    swarm.store.torrents.update(row.id, state="paused")
    swarm.engine.save_resume(row.id)
    swarm.tasks.spawn(f"announce:{row.id}", announce_stopped(swarm, row))
    return dataclasses.replace(row, state="paused")


def resume(swarm: SwarmState, row: TorrentRow) -> TorrentRow:
    """Resume a paused download: it downloads again and announces (``started``) at once.

    :raises UsageError: anything but a paused download
    """
    if row.state != "paused":
        raise UsageError(f"{row.name!r} is {row.state}, not paused")
    swarm.store.torrents.update(row.id, state="downloading")
    swarm.engine.resume(row.id)
    row = dataclasses.replace(row, state="downloading")
    start_announcing(swarm, row)
    return row


def describe_download(swarm: SwarmState, row: TorrentRow) -> dict:
    meta = swarm.meta(row)
    return {**meta.summary(), "id": row.id, "uri": row.uri, "target": row.target}
