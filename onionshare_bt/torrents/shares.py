"""Shares: a local file or folder served on onions of its own, with a tracker of its own.

Sharing (plain, or cleaned copies with ``--scrub``), describing a share, opening it to
standard clients, withdrawing one of its onions, and serving it again after a restart only
if its files are still plain files reached through no symlink.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from pathlib import Path

from ..config import PEER_VIRTUAL_PORT
from ..engine.metainfo import Metainfo, create_share
from ..errors import BadPath, UsageError
from ..multiplex.core import share_alias
from ..store import OnionRow, TorrentRow
from ..tracker.server import Served
from ..uri import ShareURI, new_token, parse_uri
from .onions import new_onions, publish, unpublish
from .state import SwarmState


async def share(swarm: SwarmState, path: str, onions: int | None,
                include_hidden: bool = False, open_share: bool | None = False,
                scrub: bool = False, staged=None, wait: bool = True) -> dict:
    """Share a file or folder; sharing the same content again returns its existing URI.

    Symlinks and the node's own home are refused; hidden files are left out unless
    ``include_hidden`` (the reply counts them in ``hidden_skipped``).

    :param scrub: share cleaned copies made in the node's staging folder (see
      :func:`_share_scrubbed`), never the originals
    :param staged: internal: the :class:`~onionshare_bt.scan.Staged` copies to share; the
      one way a path inside the node's home is shared

    :param open_share: admit standard clients too (see :func:`set_open`); None: the
      config's ``open_shares`` for a new share, unchanged for an existing one
    :param wait: return only once every onion's descriptor is uploaded, so the URI answers
      when printed; else tor uploads them in the next seconds (``obt share --no-wait``)
    """
    if scrub:
        return await _share_scrubbed(swarm, path, onions, include_hidden, open_share, wait)
    made = await asyncio.to_thread(create_share, Path(path), include_hidden=include_hidden,
                                   forbidden=() if staged else (swarm.config.home,))
    meta, skipped = made.meta, {"hidden_skipped": made.hidden_skipped}
    if staged is not None:  # what the original left out, not its copy
        skipped["hidden_skipped"] = staged.selection.hidden_skipped
    existing = swarm.store.torrents.get(meta.id)
    if existing is not None:
        if existing.role != "share":
            raise UsageError(f"this node is downloading {meta.name!r}; it seeds it already")
        if open_share and not existing.open:
            existing = set_open(swarm, existing, True)
        return {**describe_share(existing, meta, swarm.store.onions.of(meta.id)), **skipped}
    token = new_token()
    opened = swarm.config.open_shares if open_share is None else open_share
    served = Served(meta.id, token, meta.data, meta.info_hashes, open=opened)
    tracker_port = await swarm.tracker.serve(served)
    answer_to_alias(swarm, meta, token)
    try:
        rows = await new_onions(swarm, meta, onions or swarm.config.onions, "share", tracker_port,
                                wait=wait)
    except BaseException:
        await swarm.tracker.withdraw(meta.id)
        await swarm.bridges.close_torrent(meta.id)
        raise
    swarm.tracker.set_seeders(meta.id, [(r.address, PEER_VIRTUAL_PORT) for r in rows])
    src = Path(path).expanduser().resolve()
    uri = str(ShareURI(rows[0].address, "private", token))
    row = TorrentRow(
        id=meta.id, role="share", name=meta.name, save_path=str(src.parent),
        target=str(src.parent), torrent=meta.data, token=token, uri=uri, state="seeding",
        error=None, resume=None, added=time.time(), completed=time.time(), open=int(opened),
    )
    swarm.engine.add(meta, src.parent, seed=True)
    swarm.store.torrents.add(row, rows)
    return {**describe_share(row, meta, rows), **skipped}


async def _share_scrubbed(swarm: SwarmState, path: str, onions: int | None, include_hidden: bool,
                          open_share: bool | None, wait: bool = True) -> dict:
    """Share cleaned copies of ``path``, made in ``<home>/staging/<random>/<name>``.

    Cleaning is deterministic: the same original gives the same copies, hence the same
    torrent and the existing URI, and the copies made again are deleted. The reply's
    ``scrubbed`` says which files were cleaned and which were copied as they are.
    """
    from ..scan.stage import stage_scrubbed

    staged = await asyncio.to_thread(stage_scrubbed, Path(path), swarm.config.home,
                                     include_hidden=include_hidden)
    try:
        info = await share(swarm, str(staged.root), onions, include_hidden, open_share,
                           staged=staged, wait=wait)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, staged.folder, True)
        raise
    row = swarm.store.torrents.get(info["infohash"])
    if row is None or Path(row.save_path).resolve() != staged.folder.resolve():
        await asyncio.to_thread(shutil.rmtree, staged.folder, True)  # shared already
    return {**info, "scrubbed": {"cleaned": list(staged.cleaned),
                                 "copied": list(staged.copied)}}


def answer_to_alias(swarm: SwarmState, meta: Metainfo, token: str) -> None:
    """The share's peers answer to the alias of its URI's token, which a download names
    in the handshake it sends while the .torrent is on its way (:mod:`..multiplex.ahead`)."""
    swarm.bridges.answer_to(meta.id, share_alias(token), meta.info_hashes[0])


def describe_share(row: TorrentRow, meta: Metainfo, onions: list[OnionRow]) -> dict:
    return {**meta.summary(), "uri": row.uri, "onions": [f"{o.address}.onion" for o in onions],
            "open": bool(row.open)}


def set_open(swarm: SwarmState, row: TorrentRow, open_share: bool) -> TorrentRow:
    """Open a share to standard BitTorrent clients (announces with a port and no onion:
    answered, never listed), or close it to all but obt nodes again."""
    if row.role != "share":
        raise UsageError(f"{row.name!r} is a download; only a share is opened or closed")
    swarm.store.torrents.update(row.id, open=int(open_share))
    swarm.tracker.set_open(row.id, open_share)
    return dataclasses.replace(row, open=int(open_share))


def _check_unchanged_paths(row: TorrentRow, meta: Metainfo, home: Path) -> None:
    """A restored share's files must still be plain files reached through no symlink.

    A file swapped for a link since it was shared (to the node's keys, say) would be read and
    served by libtorrent: such a share is not restored.

    :raises BadPath: naming the first file that changed
    """
    base = Path(row.save_path)
    for entry in meta.files:
        path = base
        for part in Path(entry.path).parts:
            path = path / part
            if path.is_symlink():
                raise BadPath(f"{path} became a symbolic link after it was shared; "
                              "the share is not served", hint="Unshare it, or share it again.")
        if path.exists() and path.resolve().is_relative_to(home.resolve()) \
                and not own_copy(base, path, home):
            raise BadPath(f"{path} is inside the node's home; the share is not served")


def own_copy(base: Path, path: Path, home: Path) -> bool:
    """Whether ``path`` is one of the node's cleaned copies (``obt share --scrub``): the
    share's folder ``base`` lies in the node's staging folder and ``path`` inside ``base``."""
    from ..scan.stage import is_staged

    return is_staged(base, home) and path.resolve().is_relative_to(base.resolve())


async def restore_share(swarm: SwarmState, row: TorrentRow) -> None:
    meta = swarm.meta(row)
    await asyncio.to_thread(_check_unchanged_paths, row, meta, swarm.config.home)
    served = Served(meta.id, row.token, meta.data, meta.info_hashes, open=bool(row.open))
    tracker_port = await swarm.tracker.serve(served)
    answer_to_alias(swarm, meta, row.token)
    swarm.tracker.restore(meta.id, swarm.store.peers.of(meta.id, swarm.tracker.peers.ttl))
    rows = await publish(swarm, meta, swarm.store.onions.of(meta.id), tracker_port)
    swarm.tracker.set_seeders(meta.id, [(r.address, PEER_VIRTUAL_PORT) for r in rows])
    swarm.engine.add(meta, Path(row.save_path), seed=True, resume=row.resume)


async def withdraw_onion(swarm: SwarmState, row: TorrentRow, onion: str) -> dict:
    """Withdraw one of a share's onions; the share goes on on the others."""
    address = onion.lower().removesuffix(".onion")
    addresses = [o.address for o in swarm.store.onions.of(row.id)]
    if address not in addresses:
        raise UsageError(f"{onion} is not one of this share's onions")
    if parse_uri(row.uri).onion == address:
        raise UsageError("that onion is the one in the share's URI; it stays while shared")
    await unpublish(swarm, row.id, [address])
    swarm.store.onions.remove(address)
    rest = [a for a in addresses if a != address]
    swarm.tracker.set_seeders(row.id, [(a, PEER_VIRTUAL_PORT) for a in rest])
    return {"id": row.id, "name": row.name, "withdrawn": f"{address}.onion",
            "onions": [f"{a}.onion" for a in rest]}
