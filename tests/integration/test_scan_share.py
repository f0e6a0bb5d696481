"""The node's side of ``obt share --scrub``: real torrents.share with a real libtorrent
engine, tracker, bridges and store, and a stand-in for tor's onion services. The node makes
cleaned copies in its staging folder and seeds those; the same original gives the same
URI; its staging folder is shared for scrubbed copies only; a restart restores such a
share, and removing it deletes the copies."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import pytest

from onionshare_bt import config as config_mod
from onionshare_bt import torrents
from onionshare_bt.engine.metainfo import create
from onionshare_bt.engine.session import Engine
from onionshare_bt.errors import BadPath
from onionshare_bt.multiplex.bridge import Bridges
from onionshare_bt.scan import scan_path
from onionshare_bt.store import Store
from onionshare_bt.tasks import TaskRegistry
from onionshare_bt.torrents import shares
from onionshare_bt.tracker.server import TrackerServer
from tests.integration.onions import FakeOnions
from tests.unit.test_scan_formats import exiftool, make_samples, planted_in


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
async def parts(tmp_path, monkeypatch):
    for name in ("OBT_NETWORK", "OBT_TOR", "OBT_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    cfg = config_mod.load(home=home)
    store = Store(cfg.db_path)
    engine = Engine()
    await engine.start()

    async def no_dial(*args):
        raise ConnectionError("no tor here")

    bridges = Bridges(no_dial, engine.listen_port, info_hashes=engine.info_hashes)
    tracker = TrackerServer(interval=60)
    await tracker.start()
    made = torrents.Swarm(cfg, store, FakeOnions(), engine, bridges, tracker, None,
                          TaskRegistry())
    yield made
    await tracker.close()
    await bridges.close()
    await engine.close()
    store.close()


@pytest.fixture
def album(tmp_path):
    folder = tmp_path / "album"
    make_samples(folder)
    (folder / "notes.txt").write_text("no metadata here\n")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return folder


async def seeded(parts, torrent_id: str, timeout: float = 30) -> None:
    async def wait():
        while parts.engine.status(torrent_id).progress < 1.0:
            await asyncio.sleep(0.1)

    await asyncio.wait_for(wait(), timeout)


async def test_the_node_seeds_cleaned_copies_from_its_staging_folder(parts, album):
    home = parts.config.home
    before = digests(album)
    info = await parts.share(str(album), None, scrub=True)
    assert digests(album) == before  # the originals are only read
    row = parts.store.torrents.get(info["infohash"])
    staging = Path(row.save_path)
    assert staging.parent == home / "staging" and (staging / "album").is_dir()
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700
    assert info["name"] == "album" and info["hidden_skipped"] == 1
    assert sorted(info["scrubbed"]["cleaned"]) == sorted(
        f"album/{n}" for n in ("beach.jpg", "diagram.png", "letter.docx", "memo.mp3",
                               "plans.pdf"))
    assert info["scrubbed"]["copied"] == ["album/notes.txt"]
    # the torrent describes the cleaned bytes, and libtorrent seeds them from the copies
    assert create(staging / "album").id == info["infohash"] != create(album).id
    await seeded(parts, info["infohash"])
    assert scan_path(staging / "album")[1].flagged == ()
    for path in (staging / "album").iterdir():
        assert planted_in(exiftool(path)) == [], path


async def test_sharing_the_same_original_again_gives_the_same_uri_and_no_second_copy(
        parts, album):
    first = await parts.share(str(album), None, scrub=True)
    again = await parts.share(str(album), None, scrub=True)
    assert again["uri"] == first["uri"] and again["infohash"] == first["infohash"]
    assert len(list((parts.config.home / "staging").iterdir())) == 1
    plain = await parts.share(str(album), None)  # unscrubbed: another share
    assert plain["uri"] != first["uri"]


async def test_the_staging_folder_is_shared_for_scrubbed_copies_only(parts, album):
    info = await parts.share(str(album), None, scrub=True)
    staged = Path(parts.store.torrents.get(info["infohash"]).save_path) / "album"
    with pytest.raises(BadPath, match="obt's own state folder"):
        await parts.share(str(staged), None)
    with pytest.raises(BadPath, match="obt's own state folder"):  # nor re-scrubbed from there
        await parts.share(str(staged), None, scrub=True)
    with pytest.raises(BadPath, match="obt's own state folder"):
        await parts.share(str(parts.config.home), None, scrub=True)


async def test_a_scrubbed_share_is_restored_and_its_copies_go_with_it(parts, album):
    info = await parts.share(str(album), None, scrub=True)
    row = parts.store.torrents.get(info["infohash"])
    meta = parts.meta(row)
    shares._check_unchanged_paths(row, meta, parts.config.home)  # a restart serves it
    # a copy swapped for a link to the node's keys is not
    victim = Path(row.save_path) / "album" / "notes.txt"
    victim.unlink()
    victim.symlink_to(parts.config.home / "state.sqlite3")
    with pytest.raises(BadPath, match="became a symbolic link"):
        shares._check_unchanged_paths(row, meta, parts.config.home)
    result = await parts.remove(row, delete_data=False)
    assert result["deleted_data"] is False
    assert not Path(row.save_path).exists()
    assert (parts.config.home / "staging").is_dir() and album.is_dir()


async def test_removing_a_plain_share_never_deletes_its_files(parts, album):
    info = await parts.share(str(album), None)
    await parts.remove(parts.store.torrents.get(info["infohash"]), delete_data=False)
    assert (album / "beach.jpg").exists() and os.listdir(album)
