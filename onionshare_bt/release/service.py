"""Releases of obt, spread over the trust network: offered, checked, fetched, seeded.

A node that holds a verified release names the newest one on its ``/node`` document
(``"release": {"version", "uri", "manifest", "signature"}``, the last two base64). ``obt update
check`` walks the trusted set, and for the newest offer above this node's version:

1. the manifest's signature must verify with a maintainer key (shipped in
   :mod:`.keys`, or ``release_keys`` in the config) *before anything is fetched*;
2. the .torrent must hold exactly the manifest's files, names and sizes, in ``obt-<version>/``;
3. the download runs without onions of its own and only observes the swarm: it is never
   listed, nobody can dial it, and trackers give it seeders only, who want nothing from it;
4. when it is complete every file's sha256 must match the manifest; only then does the node
   publish seed-back onions and seed it. A release that fails any step is refused, reported,
   its data deleted, and never seeded.

Nothing here runs, imports or installs what it fetched: the user is told the version, the
folder and each file's sha256, to compare with the maintainers' website.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

from .. import __version__, torrents
from ..engine.metainfo import parse
from ..errors import ObtError, ReleaseRefused, UsageError
from ..store import ReleaseRow
from ..uri import parse_uri
from . import core
from .keys import MAINTAINER_KEYS

log = logging.getLogger(__name__)

MAX_OFFER_URI = 512


def release_id(manifest: bytes, signature: bytes, uri: str) -> str:
    digest = hashlib.sha256()
    for part in (manifest, signature, uri.encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:32]


def parse_offer(source: str, body: bytes) -> dict | None:
    """The release a ``/node`` document offers, or None; malformed offers are refused."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    raw = data.get("release") if isinstance(data, dict) else None
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ReleaseRefused("the node's release offer is malformed")
    version, uri = raw.get("version"), raw.get("uri")
    try:
        if not isinstance(version, str) or not isinstance(uri, str) or len(uri) > MAX_OFFER_URI:
            raise ValueError("types")
        manifest = base64.b64decode(raw.get("manifest", ""), validate=True)
        signature = base64.b64decode(raw.get("signature", ""), validate=True)
        if len(manifest) > core.MAX_MANIFEST or len(signature) > 128:
            raise ValueError("size")
        if parse_uri(uri).kind != "private":
            raise ValueError("uri")
    except (ValueError, TypeError, binascii.Error, ObtError) as exc:
        raise ReleaseRefused("the node's release offer is malformed") from exc
    return {"source": source, "version": version[:core.MAX_VERSION], "uri": uri,
            "manifest": manifest, "signature": signature}


def held_offer(store) -> dict | None:
    """The newest verified release in ``store``, as the identity onion's ``/node`` offers it
    (the trust service is given this; it cannot import this package, which is above it)."""
    held = [r for r in store.releases.all() if r.state == "verified"]
    if not held:
        return None
    best = max(held, key=lambda r: core.Version(r.version))
    return {"version": best.version, "uri": best.uri,
            "manifest": base64.b64encode(best.manifest).decode(),
            "signature": base64.b64encode(best.signature).decode()}


class ReleaseService:
    """Hold, offer, check and fetch releases.

    :param config: the node's settings (release keys and folder, fetch time limit)
    :param store: the node's database (its releases table)
    :param swarm: shares, fetches and seeds the release torrents (:class:`~onionshare_bt.torrents.Swarm`)
    :param http: HTTP over Tor (a release's .torrent)
    :param tasks: where verifications run
    :param trust: the trust service (its walk finds the offers)
    """

    def __init__(self, config, store, swarm, http, tasks, trust) -> None:
        self.config, self.store, self.swarm = config, store, swarm
        self.http, self.tasks, self.trust = http, tasks, trust
        configured = config.release_keys or MAINTAINER_KEYS
        self.keys = [core.parse_public_key(k) for k in configured]

    async def start(self) -> None:
        """Pick up where a restart left off: verify the releases that finished unverified."""
        for row in self.store.releases.all():
            if row.state != "fetching" or row.torrent_id is None:
                continue
            torrent = self.store.torrents.get(row.torrent_id)
            if torrent is None:
                continue
            if torrent.state == "complete":
                self.tasks.spawn(f"release-verify:{row.id}", self._verify(row))

    # -- what this node offers ----------------------------------------------------------
    def offer(self) -> dict | None:
        return held_offer(self.store)

    async def publish(self, folder: str) -> dict:
        """Seed a release folder (as the maintainers build it) after verifying it."""
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise UsageError(f"{path}: not a release folder")
        manifest = await asyncio.to_thread(core.read_folder, path, self.keys)
        signature = (path / core.SIGNATURE).read_bytes()
        info = await self.swarm.share(str(path), None)
        row = ReleaseRow(release_id(manifest.raw, signature, info["uri"]), manifest.version,
                         manifest.raw, signature, info["uri"], "", info["infohash"], "verified",
                         None, str(path), time.time())
        self.store.releases.put(row)
        return self.describe(row)

    # -- update check -------------------------------------------------------------------
    async def check(self) -> dict:
        visits, remote, _ = await self.trust.walk()
        offers, refused = [], []
        for visit in visits:
            body = remote.bodies.get(visit.onion)
            if body is None:
                continue
            try:
                offer = parse_offer(visit.onion, body)
            except ReleaseRefused as exc:
                refused.append({"source": visit.onion, "version": "", "reason": exc.message})
                continue
            if offer is not None:
                offers.append(offer)
        known = {r.id: r for r in self.store.releases.all()}
        fresh = []
        for offer in offers:
            rid = release_id(offer["manifest"], offer["signature"], offer["uri"])
            old = known.get(rid)
            if old is not None and old.state == "refused":
                refused.append({"source": offer["source"], "version": offer["version"],
                                "reason": f"refused before: {old.reason}"})
            else:
                fresh.append(offer)
        current = self.current()
        best, bad = core.choose(fresh, current, self.keys)
        for offer in fresh:
            reason = next((b["reason"] for b in bad if b["source"] == offer["source"]
                           and b["version"] == str(offer["version"])[:core.MAX_VERSION]), None)
            if reason is not None:
                self._record_refusal(offer, reason)
        refused += bad
        unreachable = [{"onion": f"{v.onion}.onion", "error": v.error}
                       for v in visits if not v.reachable]
        result = {"current": current, "offers": len(offers), "refused": refused,
                  "unreachable": unreachable, "release": None}
        if best is None:
            return result
        held = known.get(release_id(best["manifest"], best["signature"], best["uri"]))
        if held is not None and held.state == "fetching":
            result["release"] = self.describe(held)
            return result
        try:
            row = await self._fetch(best)
        except ReleaseRefused as exc:
            self._record_refusal(best, exc.message)
            refused.append({"source": best["source"], "version": best["version"],
                            "reason": exc.message})
            return result
        result["release"] = self.describe(row)
        return result

    def current(self) -> str:
        """The newest version this node runs or holds verified."""
        versions = [__version__] + [r.version for r in self.store.releases.all()
                                    if r.state == "verified"]
        return str(max(core.Version(v) for v in versions))

    async def _fetch(self, offer: dict) -> ReleaseRow:
        manifest = core.parse_manifest(offer["manifest"])
        uri = parse_uri(offer["uri"])
        rid = release_id(offer["manifest"], offer["signature"], offer["uri"])
        data = await self.http.fetch_torrent(uri, self.config.fetch_timeout)
        meta = parse(data)
        expected = {(f"{manifest.folder}/{e.name}", e.size) for e in manifest.files}
        expected |= {(f"{manifest.folder}/{core.MANIFEST}", len(manifest.raw)),
                     (f"{manifest.folder}/{core.SIGNATURE}", len(offer["signature"]))}
        if meta.name != manifest.folder or {(f.path, f.size) for f in meta.files} != expected:
            raise ReleaseRefused("the release's torrent does not hold exactly the files of "
                                 "its signed manifest")
        target = self.config.release_dir
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.store.torrents.get(meta.id) is None:
            await self.swarm.start_download(uri, meta, target, seed=False)
        row = ReleaseRow(rid, manifest.version, offer["manifest"], offer["signature"],
                         offer["uri"], offer["source"], meta.id, "fetching", None,
                         str(target / manifest.folder), time.time())
        self.store.releases.put(row)
        log.info("fetching release %s from %s….onion", manifest.version, offer["source"][:12])
        return row

    def _record_refusal(self, offer: dict, reason: str) -> None:
        rid = release_id(offer["manifest"], offer["signature"], offer["uri"])
        self.store.releases.put(ReleaseRow(
            rid, str(offer["version"])[:core.MAX_VERSION], offer["manifest"],
            offer["signature"], offer["uri"], offer["source"], None, "refused", reason, None,
            time.time()))
        log.warning("refused release %s from %s….onion: %s", offer["version"],
                    offer["source"][:12], reason)

    # -- completion ---------------------------------------------------------------------
    def completed(self, torrent_id: str) -> None:
        """A download finished and moved into place: verify it if it is a release."""
        for row in self.store.releases.all():
            if row.torrent_id == torrent_id and row.state == "fetching":
                self.tasks.spawn(f"release-verify:{row.id}", self._verify(row))

    async def _verify(self, row: ReleaseRow) -> None:
        torrent = self.store.torrents.get(row.torrent_id)
        try:
            manifest = core.parse_manifest(row.manifest)
            await asyncio.to_thread(core.verify_folder, Path(row.path), manifest, row.signature)
        except ReleaseRefused as exc:
            log.warning("refused release %s: %s; its files are deleted", row.version,
                        exc.message)
            self.store.releases.put(_replace(row, state="refused", reason=exc.message))
            if torrent is not None:
                await self.swarm.remove(torrent, delete_data=True)
            return
        self.store.releases.put(_replace(row, state="verified"))
        if torrent is not None:
            await self.swarm.seed_back(torrent)
        log.warning("release %s verified; seeding it from %s", row.version, row.path)

    # -- reporting ----------------------------------------------------------------------
    def list(self) -> list[dict]:
        return [self.describe(r) for r in self.store.releases.all()]

    def find(self, release_id_: str) -> dict:
        row = self.store.releases.get(release_id_)
        if row is None:
            raise UsageError(f"no release {release_id_!r}")
        return self.describe(row)

    def describe(self, row: ReleaseRow) -> dict:
        out = {"id": row.id, "version": row.version, "state": row.state, "reason": row.reason,
               "source": f"{row.source}.onion" if row.source else None, "uri": row.uri,
               "torrent_id": row.torrent_id, "path": row.path, "files": []}
        try:
            manifest = core.parse_manifest(row.manifest)
        except ReleaseRefused:
            return out
        out["files"] = [{"name": e.name, "size": e.size, "sha256": e.sha256}
                        for e in manifest.files]
        progress = self.swarm.progress(row.torrent_id) if row.torrent_id else None
        if progress is not None:
            out.update(progress)
        return out


def _replace(row: ReleaseRow, **changes) -> ReleaseRow:
    return dataclasses.replace(row, **changes)
