"""Shares and downloads: what the node does with a torrent, from start to seeding.

A *share* is a local file or folder served on K onion services of its own: each onion maps
port 80 to the share's tracker listener and port 6881 to an inbound bridge listener. A
*download* fetches a share's .torrent through Tor, publishes K onions of its own (so it
seeds back), announces them to the share's tracker, and dials every onion peer through an
outbound bridge. Files land in a hidden staging folder inside the target and are moved into
place only when every piece has been verified.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import shutil
import time
from pathlib import Path

from .config import PEER_VIRTUAL_PORT, TRACKER_VIRTUAL_PORT, Config
from .engine.metainfo import Metainfo, create_share, parse
from .engine.session import Engine
from .errors import BadPath, NodeError, ObtError, UsageError
from .multiplex.bridge import Bridges
from .store import OnionRow, Store, TorrentRow
from .tasks import TaskRegistry
from .tor.client import TorClient
from .tracker.client import TrackerClient
from .tracker.metafile import legacy_info_hash
from .tracker.server import Served, TrackerServer
from .uri import ShareURI, new_token, parse_uri

log = logging.getLogger(__name__)

STAGING_PREFIX = ".obt-incomplete-"


@dataclasses.dataclass
class Parts:
    """The node's running parts, as the torrent operations use them."""

    config: Config
    store: Store
    tor: TorClient
    engine: Engine
    bridges: Bridges
    tracker: TrackerServer
    http: TrackerClient
    tasks: TaskRegistry
    peer_ids: dict[str, bytes] = dataclasses.field(default_factory=dict)
    #: every published onion's port map, to republish after a tor restart
    onion_ports: dict[str, dict] = dataclasses.field(default_factory=dict)
    #: parsed metadata per torrent id (status polls must not re-parse the .torrent)
    metas: dict[str, Metainfo] = dataclasses.field(default_factory=dict)

    def meta(self, row: TorrentRow) -> Metainfo:
        """The torrent's metadata, parsed once per node lifetime."""
        meta = self.metas.get(row.id)
        if meta is None:
            meta = self.metas[row.id] = parse(row.torrent)
        return meta
    announce_errors: dict[str, str] = dataclasses.field(default_factory=dict)


# -- onions -----------------------------------------------------------------------------
async def publish(parts: Parts, meta: Metainfo, rows: list[OnionRow], tracker_port: int | None):
    """Republish a torrent's onions from stored keys; returns the published rows.

    It does not wait for the descriptors' upload: the addresses exist already, tor uploads
    them as it can, and a node restoring a hundred shares at once must not call one of them
    failed because its tor was busy (peers and downloaders retry until it answers).
    """
    published = []
    try:
        for row in rows:
            published.append(await _publish_one(parts, meta, row.purpose, tracker_port, row.key,
                                                wait=False))
    except BaseException:
        await unpublish(parts, meta.id, [r.address for r in published])
        raise
    return published


async def new_onions(
    parts: Parts, meta: Metainfo, count: int, purpose: str, tracker_port: int | None,
    *, wait: bool = True,
) -> list[OnionRow]:
    """Publish ``count`` fresh onions for a torrent, concurrently; all or none.

    :param wait: wait until each descriptor is uploaded (a share's URI must answer when
      printed); a download's seed-back onions need not hold up its first announce
    """
    results = await asyncio.gather(
        *(_publish_one(parts, meta, purpose, tracker_port, None, wait) for _ in range(count)),
        return_exceptions=True,
    )
    rows = [r for r in results if isinstance(r, OnionRow)]
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:
        await unpublish(parts, meta.id, [r.address for r in rows])
        raise failure
    return rows


async def _publish_one(parts, meta, purpose, tracker_port, key, wait=True) -> OnionRow:
    legacy = legacy_info_hash(meta.data)  # what aria2 < 1.37 calls a hybrid torrent
    aliases = {legacy: meta.info_hashes[0]} if legacy else None
    path = await parts.bridges.inbound(meta.id, meta.info_hashes, aliases)
    ports = {PEER_VIRTUAL_PORT: ("127.0.0.1", int(path.endpoint.rsplit(":", 1)[1]))}
    if tracker_port is not None:
        ports[TRACKER_VIRTUAL_PORT] = ("127.0.0.1", tracker_port)
    address, key = await parts.tor.add_onion(ports, key, await_publication=wait)
    path.onion = address
    parts.onion_ports[address] = ports
    return OnionRow(address=address, key=key, torrent_id=meta.id, purpose=purpose)


async def unpublish(parts: Parts, torrent_id: str, addresses: list[str]) -> None:
    for address in addresses:
        try:
            await parts.tor.remove_onion(address)
        except ObtError as exc:
            log.warning("could not remove an onion service: %s", exc)
        parts.onion_ports.pop(address, None)
        await parts.bridges.close_listener(torrent_id, address)


async def republish_all(parts: Parts) -> None:
    """Publish every onion again (same keys, same local ports) on a fresh tor."""
    keys = {o.address: o.key for o in parts.store.onions.all()}
    await asyncio.gather(*(
        parts.tor.add_onion(ports, keys[address], await_publication=False)
        for address, ports in parts.onion_ports.items() if address in keys
    ))


# -- shares -----------------------------------------------------------------------------
async def share(parts: Parts, path: str, onions: int | None,
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
        return await _share_scrubbed(parts, path, onions, include_hidden, open_share, wait)
    made = await asyncio.to_thread(create_share, Path(path), include_hidden=include_hidden,
                                   forbidden=() if staged else (parts.config.home,))
    meta, skipped = made.meta, {"hidden_skipped": made.hidden_skipped}
    if staged is not None:  # what the original left out, not its copy
        skipped["hidden_skipped"] = staged.selection.hidden_skipped
    existing = parts.store.torrents.get(meta.id)
    if existing is not None:
        if existing.role != "share":
            raise UsageError(f"this node is downloading {meta.name!r}; it seeds it already")
        if open_share and not existing.open:
            existing = set_open(parts, existing, True)
        return {**describe_share(existing, meta, parts.store.onions.of(meta.id)), **skipped}
    token = new_token()
    opened = parts.config.open_shares if open_share is None else open_share
    served = Served(meta.id, token, meta.data, meta.info_hashes, open=opened)
    tracker_port = await parts.tracker.serve(served)
    try:
        rows = await new_onions(parts, meta, onions or parts.config.onions, "share", tracker_port,
                                wait=wait)
    except BaseException:
        await parts.tracker.withdraw(meta.id)
        await parts.bridges.close_torrent(meta.id)
        raise
    parts.tracker.set_seeders(meta.id, [(r.address, PEER_VIRTUAL_PORT) for r in rows])
    src = Path(path).expanduser().resolve()
    uri = str(ShareURI(rows[0].address, "private", token))
    row = TorrentRow(
        id=meta.id, role="share", name=meta.name, save_path=str(src.parent),
        target=str(src.parent), torrent=meta.data, token=token, uri=uri, state="seeding",
        error=None, resume=None, added=time.time(), completed=time.time(), open=int(opened),
    )
    parts.engine.add(meta, src.parent, seed=True)
    parts.store.torrents.add(row, rows)
    return {**describe_share(row, meta, rows), **skipped}


async def _share_scrubbed(parts: Parts, path: str, onions: int | None, include_hidden: bool,
                          open_share: bool | None, wait: bool = True) -> dict:
    """Share cleaned copies of ``path``, made in ``<home>/staging/<random>/<name>``.

    Cleaning is deterministic: the same original gives the same copies, hence the same
    torrent and the existing URI, and the copies made again are deleted. The reply's
    ``scrubbed`` says which files were cleaned and which were copied as they are.
    """
    from .scan.stage import stage_scrubbed

    staged = await asyncio.to_thread(stage_scrubbed, Path(path), parts.config.home,
                                     include_hidden=include_hidden)
    try:
        info = await share(parts, str(staged.root), onions, include_hidden, open_share,
                           staged=staged, wait=wait)
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, staged.folder, True)
        raise
    row = parts.store.torrents.get(info["infohash"])
    if row is None or Path(row.save_path).resolve() != staged.folder.resolve():
        await asyncio.to_thread(shutil.rmtree, staged.folder, True)  # shared already
    return {**info, "scrubbed": {"cleaned": list(staged.cleaned),
                                 "copied": list(staged.copied)}}


def describe_share(row: TorrentRow, meta: Metainfo, onions: list[OnionRow]) -> dict:
    return {**meta.summary(), "uri": row.uri, "onions": [f"{o.address}.onion" for o in onions],
            "open": bool(row.open)}


def set_open(parts: Parts, row: TorrentRow, open_share: bool) -> TorrentRow:
    """Open a share to standard BitTorrent clients (announces with a port and no onion:
    answered, never listed), or close it to all but obt nodes again."""
    if row.role != "share":
        raise UsageError(f"{row.name!r} is a download; only a share is opened or closed")
    parts.store.torrents.update(row.id, open=int(open_share))
    parts.tracker.set_open(row.id, open_share)
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
                and not _own_copy(base, path, home):
            raise BadPath(f"{path} is inside the node's home; the share is not served")


def _own_copy(base: Path, path: Path, home: Path) -> bool:
    """Whether ``path`` is one of the node's cleaned copies (``obt share --scrub``): the
    share's folder ``base`` lies in the node's staging folder and ``path`` inside ``base``."""
    from .scan.stage import is_staged

    return is_staged(base, home) and path.resolve().is_relative_to(base.resolve())


async def restore_share(parts: Parts, row: TorrentRow) -> None:
    meta = parts.meta(row)
    await asyncio.to_thread(_check_unchanged_paths, row, meta, parts.config.home)
    served = Served(meta.id, row.token, meta.data, meta.info_hashes, open=bool(row.open))
    tracker_port = await parts.tracker.serve(served)
    parts.tracker.restore(meta.id, parts.store.peers.of(meta.id, parts.tracker.swarm.ttl))
    rows = await publish(parts, meta, parts.store.onions.of(meta.id), tracker_port)
    parts.tracker.set_seeders(meta.id, [(r.address, PEER_VIRTUAL_PORT) for r in rows])
    parts.engine.add(meta, Path(row.save_path), seed=True, resume=row.resume)


# -- downloads --------------------------------------------------------------------------
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


async def get(parts: Parts, text: str, target: str, timeout: float | None) -> dict:
    """Start (or re-attach to) a download; returns when its metadata is in the engine."""
    uri = parse_uri(text)
    if uri.kind != "private":
        raise UsageError("public catalogue URIs are not supported by this version of obt")
    existing = parts.store.torrents.find_download(str(uri))
    if existing is not None:
        return describe_download(parts, existing)
    data = await parts.http.fetch_torrent(uri, timeout or parts.config.fetch_timeout)
    return await start_download(parts, uri, parse(data), Path(target))


async def start_download(parts: Parts, uri: ShareURI, meta: Metainfo, target: Path,
                         seed: bool = True) -> dict:
    """Download ``meta`` from the share at ``uri`` into ``target``.

    :param seed: publish seed-back onions now; without them the download only observes the
      swarm: it is never listed, nobody can dial it, and trackers give it seeders only, who
      want nothing from it (a release until it is verified: see :func:`seed_back`)
    """
    if parts.store.torrents.get(meta.id) is not None:
        raise UsageError(f"this node already has {meta.name!r} (id {meta.id[:16]})")
    dest = _check_target(target, meta.name)
    staging = dest / f"{STAGING_PREFIX}{meta.id[:16]}"
    staging.mkdir(exist_ok=True)
    rows = (await new_onions(parts, meta, parts.config.onions, "seed", None, wait=False)
            if seed else [])
    row = TorrentRow(
        id=meta.id, role="download", name=meta.name, save_path=str(staging), target=str(dest),
        torrent=meta.data, token=uri.token, uri=str(uri), state="downloading", error=None,
        resume=None, added=time.time(), completed=None,
    )
    parts.store.torrents.add(row, rows)
    parts.engine.add(meta, staging)
    start_announcing(parts, row)
    return describe_download(parts, row)


async def seed_back(parts: Parts, row: TorrentRow) -> list[OnionRow]:
    """Publish seed-back onions for a download that had none, and announce them."""
    meta = parts.meta(row)
    rows = await new_onions(parts, meta, parts.config.onions, "seed", None, wait=False)
    for onion in rows:
        parts.store.onions.add(onion)
    start_announcing(parts, row)
    return rows


async def restore_download(parts: Parts, row: TorrentRow) -> None:
    """Bring a download back; a paused one comes back paused, and does not announce."""
    meta = parts.meta(row)
    await publish(parts, meta, parts.store.onions.of(meta.id), None)
    paused = row.state == "paused"
    parts.engine.add(meta, Path(row.save_path), resume=row.resume, paused=paused)
    if row.state == "moving":  # stopped between verification and the move: do it now
        parts.engine.move(meta.id, Path(row.target))
    if not paused:
        start_announcing(parts, row)


def pause(parts: Parts, row: TorrentRow) -> TorrentRow:
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
    st = parts.engine.status(row.id)
    if st.total_wanted and st.total_done >= st.total_wanted:
        raise UsageError(f"{row.name!r} has every piece already; it is being completed")
    parts.engine.pause(row.id)
    parts.store.torrents.update(row.id, state="paused")
    parts.engine.save_resume(row.id)
    parts.tasks.spawn(f"announce:{row.id}", _announce_stopped(parts, row))
    return dataclasses.replace(row, state="paused")


def resume(parts: Parts, row: TorrentRow) -> TorrentRow:
    """Resume a paused download: it downloads again and announces (``started``) at once.

    :raises UsageError: anything but a paused download
    """
    if row.state != "paused":
        raise UsageError(f"{row.name!r} is {row.state}, not paused")
    parts.store.torrents.update(row.id, state="downloading")
    parts.engine.resume(row.id)
    row = dataclasses.replace(row, state="downloading")
    start_announcing(parts, row)
    return row


async def _announce_stopped(parts: Parts, row: TorrentRow) -> None:
    """One ``stopped`` announce to every tracker of a paused download (best effort)."""
    uri = parse_uri(row.uri)
    trackers = [uri] + [ShareURI(o, uri.kind, uri.token) for o in parts.store.trackers.of(row.id)
                        if o != uri.onion]
    own = {o.address for o in parts.store.onions.of(row.id)}
    status = parts.engine.status(row.id)
    replies = await asyncio.gather(
        *(_announce_to(parts, row, t, "stopped", own, status) for t in trackers),
        return_exceptions=True)
    for reply in replies:
        if isinstance(reply, ObtError):
            log.info("stopped announce for %s failed: %s", row.id[:16], reply.message)


def describe_download(parts: Parts, row: TorrentRow) -> dict:
    meta = parts.meta(row)
    return {**meta.summary(), "id": row.id, "uri": row.uri, "target": row.target}


def start_announcing(parts: Parts, row: TorrentRow) -> None:
    parts.peer_ids.setdefault(row.id, secrets.token_bytes(20))
    parts.tasks.spawn(f"announce:{row.id}", _announce_loop(parts, row.id))


async def _announce_loop(parts: Parts, torrent_id: str) -> None:
    """Announce our onions to the source tracker and dial every peer it returns."""
    event, backoff = "started", 2.0
    while True:
        row = parts.store.torrents.get(torrent_id)
        if row is None:
            return
        try:
            interval = await announce_once(parts, row, event)
            event = ""
            parts.announce_errors.pop(torrent_id, None)
            connected = parts.engine.status(torrent_id).connected
            wait = interval if connected else backoff
            backoff = 2.0 if connected else min(backoff * 2, 30.0)
        except ObtError as exc:
            parts.announce_errors[torrent_id] = exc.message
            log.info("announce for %s failed: %s", torrent_id[:16], exc.message)
            wait, backoff = backoff, min(backoff * 2, 30.0)
        await asyncio.sleep(wait)


#: other trackers (mirrors) a download remembers and announces to
MAX_TRACKERS = 8


async def announce_once(parts: Parts, row: TorrentRow, event: str) -> int:
    """Announce to the share's tracker and every mirror of it learnt so far, at once.

    Peers are dialled as each reply comes in; the round fails only when no tracker answers.
    Trackers named in replies (``x-obt-trackers``) are remembered and announced to from the
    next round on: a download survives its source's tracker going away.
    """
    uri = parse_uri(row.uri)
    trackers = [uri] + [ShareURI(o, uri.kind, uri.token) for o in parts.store.trackers.of(row.id)
                        if o != uri.onion]
    status = parts.engine.status(row.id)
    own = {o.address for o in parts.store.onions.of(row.id)}
    interval = parts.config.announce_interval
    answered, failure = False, None
    calls = [asyncio.ensure_future(_announce_to(parts, row, t, event, own, status))
             for t in trackers]
    try:
        for result in asyncio.as_completed(calls):
            try:
                reply = await result
            except ObtError as exc:
                failure = failure or exc
                continue
            answered = True
            interval = await _take_reply(parts, row, uri, own, reply, interval)
    finally:
        for call in calls:
            call.cancel()
    if not answered and failure is not None:
        raise failure
    return interval


async def _take_reply(parts: Parts, row: TorrentRow, uri: ShareURI, own: set[str], reply,
                      interval: int) -> int:
    for onion in reply.trackers:
        if onion not in own and onion != uri.onion:
            if parts.store.trackers.add(row.id, onion, MAX_TRACKERS):
                log.info("%s: learnt another tracker %s….onion", row.name, onion[:12])
    for peer_onion, port in sorted(p for p in reply.peers if p[0] not in own):
        try:
            endpoint = await parts.bridges.outbound(row.id, peer_onion, port)
        except NodeError as exc:  # every endpoint of the torrent is busy: the cap holds
            log.info("%s: %s", row.name, exc.message)
            break
        parts.engine.connect(row.id, endpoint)
    return min(interval, max(reply.interval, 5))


async def _announce_to(parts: Parts, row: TorrentRow, tracker: ShareURI, event: str,
                       own: set[str], status):
    """Announce each of our onions to one tracker; the peers of all replies together."""
    peers: set[tuple[str, int]] = set()
    last = None
    # with no onion of our own (a release not verified yet) we only observe: not listed
    for address in sorted(own) or [None]:
        params = {
            "info_hash": bytes.fromhex(row.id),
            "peer_id": parts.peer_ids[row.id],
            "uploaded": status.payload_up,
            "downloaded": status.payload_down,
            "left": max(0, status.total_wanted - status.total_done),
            "numwant": 50,
        }
        if address is not None:
            params.update(ip=f"{address}.onion", port=PEER_VIRTUAL_PORT)
        if event:
            params["event"] = event
        last = await parts.http.announce(tracker, params, parts.config.fetch_timeout)
        peers.update(last.peers)
    return dataclasses.replace(last, peers=tuple(sorted(peers)))


async def withdraw_onion(parts: Parts, row: TorrentRow, onion: str) -> dict:
    """Withdraw one of a share's onions; the share goes on on the others."""
    address = onion.lower().removesuffix(".onion")
    addresses = [o.address for o in parts.store.onions.of(row.id)]
    if address not in addresses:
        raise UsageError(f"{onion} is not one of this share's onions")
    if parse_uri(row.uri).onion == address:
        raise UsageError("that onion is the one in the share's URI; it stays while shared")
    await unpublish(parts, row.id, [address])
    parts.store.onions.remove(address)
    rest = [a for a in addresses if a != address]
    parts.tracker.set_seeders(row.id, [(a, PEER_VIRTUAL_PORT) for a in rest])
    return {"id": row.id, "name": row.name, "withdrawn": f"{address}.onion",
            "onions": [f"{a}.onion" for a in rest]}


# -- removal ----------------------------------------------------------------------------
async def remove(parts: Parts, row: TorrentRow, delete_data: bool) -> dict:
    """Stop serving and forget a torrent: onions withdrawn, tracker closed, engine dropped.

    A share's files are the user's own and are never deleted (the cleaned copies of a
    ``--scrub`` share are the node's: they are); a download's are deleted only with
    ``delete_data``.
    """
    if delete_data and row.role == "share":
        raise UsageError(
            "--delete-data only deletes downloaded data; obt never deletes a share's files"
        )
    await parts.tasks.cancel(f"announce:{row.id}")
    await unpublish(parts, row.id, [o.address for o in parts.store.onions.of(row.id)])
    await parts.tracker.withdraw(row.id)
    await parts.bridges.close_torrent(row.id)
    if parts.engine.has(row.id):
        parts.engine.remove(row.id, delete_files=delete_data)
    parts.store.torrents.remove(row.id)
    parts.peer_ids.pop(row.id, None)
    parts.announce_errors.pop(row.id, None)
    parts.metas.pop(row.id, None)
    if row.role == "share" and _own_copy(Path(row.save_path), Path(row.save_path),
                                         parts.config.home):
        await asyncio.to_thread(shutil.rmtree, row.save_path, True)
    return {"id": row.id, "name": row.name, "role": row.role, "deleted_data": delete_data}
