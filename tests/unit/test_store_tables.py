"""Each table module of the store: what it owns, read and written through its typed
methods (torrents and trackers, onions, tracker peers are also in test_store.py)."""

from __future__ import annotations

import dataclasses

import pytest

from onionshare_bt.errors import StoreError
from onionshare_bt.store import (LedgerRow, MirrorItemRow, MirrorRow, OnionRow, ReleaseRow,
                                 Store, TorrentRow)
from onionshare_bt.onion import onion_from_pubkey


def onion(i: int) -> str:
    return onion_from_pubkey(bytes([i]) * 32)


def torrent(tid: str, role: str = "share", added: float = 1.0, uri: str = "u") -> TorrentRow:
    return TorrentRow(id=tid, role=role, name="n", save_path="/x", target="/x", torrent=b"t",
                      token="t", uri=uri, state="seeding", error=None, resume=None,
                      added=added, completed=None)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.sqlite3")
    yield s
    s.close()


# -- torrents ---------------------------------------------------------------------------
def test_torrents_by_role_oldest_first_and_found_by_uri(store):
    store.torrents.add(torrent("b", "download", 2.0, uri="http://b"), [])
    store.torrents.add(torrent("a", "share", 3.0), [])
    store.torrents.add(torrent("c", "download", 1.0, uri="http://c"), [])
    assert [r.id for r in store.torrents.all()] == ["c", "b", "a"]
    assert [r.id for r in store.torrents.all("download")] == ["c", "b"]
    assert store.torrents.find_download("http://b").id == "b"
    assert store.torrents.find_download("u") is None  # a share's URI is not a download's


def test_a_torrent_update_changes_only_what_may_change(store):
    store.torrents.add(torrent("a"), [])
    store.torrents.update("a", state="error", error="disk", open=1)
    assert dataclasses.astuple(store.torrents.get("a"))[8:10] == ("error", "disk")
    assert store.torrents.get("a").open == 1
    for bad in ({"token": "x"}, {"uri": "x", "state": "y"}, {}):
        with pytest.raises(StoreError, match="bad update"):
            store.torrents.update("a", **bad)
    assert store.torrents.get("a").token == "t"


def test_a_download_keeps_at_most_limit_other_trackers(store):
    store.torrents.add(torrent("d", "download"), [])
    assert store.trackers.add("d", onion(1), limit=2)
    assert not store.trackers.add("d", onion(1), limit=2)  # known already
    assert store.trackers.add("d", onion(2), limit=2)
    assert not store.trackers.add("d", onion(3), limit=2)  # over the limit
    assert store.trackers.of("d") == [onion(1), onion(2)]
    store.torrents.remove("d")
    assert store.trackers.of("d") == []


# -- onions -----------------------------------------------------------------------------
def test_onions_of_a_torrent_and_their_removal(store):
    store.torrents.add(torrent("a"), [OnionRow(onion(1), "k1", "a", "share")])
    store.torrents.add(torrent("b", "download"), [])
    store.onions.add(OnionRow(onion(2), "k2", "b", "seed"))
    assert [(o.address, o.purpose) for o in store.onions.of("b")] == [(onion(2), "seed")]
    assert {o.key for o in store.onions.all()} == {"k1", "k2"}
    store.onions.remove(onion(1))
    assert store.onions.of("a") == []
    with pytest.raises(StoreError):  # an onion belongs to a torrent
        store.onions.add(OnionRow(onion(3), "k3", "nothing", "seed"))


# -- trust, the catalogue, the identity -------------------------------------------------
def test_trust_add_remove_and_depth(store):
    assert store.trust.add(onion(1)) and not store.trust.add(onion(1))
    store.trust.add(onion(2))
    assert store.trust.all() == [onion(1), onion(2)]
    assert store.trust.remove(onion(1)) and not store.trust.remove(onion(1))
    assert store.trust.all() == [onion(2)]
    assert store.trust.depth() == 1
    store.trust.set_depth(3)
    assert store.trust.depth() == 3


def test_the_catalogue_lists_what_was_published(store):
    store.torrents.add(torrent("a"), [])
    store.catalogue.publish("a", True)
    store.catalogue.publish("a", True)  # twice is once
    assert [(t, d) for t, _, d in store.catalogue.all()] == [("a", "")]
    store.catalogue.publish("a", True, "night sounds")
    store.catalogue.publish("a", True)  # published again without one: the text stays
    assert [(t, d) for t, _, d in store.catalogue.all()] == [("a", "night sounds")]
    store.catalogue.publish("a", False)
    assert store.catalogue.all() == []
    store.catalogue.publish("a", True)  # withdrawn, then published: a new entry, no text
    assert [d for _, _, d in store.catalogue.all()] == [""]


def test_the_identity_is_none_until_made_and_kept_typed(store):
    assert (store.identity.key(), store.identity.public_token()) == (None, None)
    store.identity.set_public_token("p" * 32)
    assert (store.identity.key(), store.identity.public_token()) == (None, "p" * 32)
    store.identity.set_key("ED25519-V3:k")
    assert (store.identity.key(), store.identity.public_token()) == ("ED25519-V3:k", "p" * 32)


# -- the ledger -------------------------------------------------------------------------
def test_the_ledger_row_and_the_relayed_days(store):
    assert store.ledger.load() == LedgerRow()
    store.ledger.save(LedgerRow("boot", 100, 100, 5), "2026-12-01", 100)
    store.ledger.save(LedgerRow("boot", 250, 250, 9), "2026-12-01", 150)
    store.ledger.save(LedgerRow("boot", 250, 250, 12), "2026-12-02", 0)
    assert store.ledger.load() == LedgerRow("boot", 250, 250, 12)
    assert store.ledger.relayed_on("2026-12-01") == 250
    assert store.ledger.relayed_on("2026-12-02") == 0  # no bytes, no row


# -- mirrors ----------------------------------------------------------------------------
def mirror(source: str) -> MirrorRow:
    return MirrorRow(source, onion(9), "ED25519-V3:mk", "t" * 32, "/public/c", 1, "d0", 1.0)


def item(source: str, infohash: str, name: str = "i") -> MirrorItemRow:
    return MirrorItemRow(source, infohash, name, 10, 1, "http://i", b"torrent", 1.0)


def test_a_mirror_its_items_and_peers(store):
    src = onion(1)
    store.mirrors.add(mirror(src), [item(src, "aa"), item(src, "bb")])
    assert store.mirrors.all() == [mirror(src)] and store.mirrors.get(onion(2)) is None
    assert "mk" not in repr(store.mirrors.get(src))  # keys never reach a repr
    store.mirrors.update(src, follow=0, digest="d1")
    assert (store.mirrors.get(src).follow, store.mirrors.get(src).digest) == (0, "d1")
    with pytest.raises(StoreError, match="bad update"):
        store.mirrors.update(src, key="other")
    store.mirrors.add_item(item(src, "aa", "renamed"))  # replaces
    assert [(i.infohash, i.name) for i in store.mirrors.items(src)] == [("aa", "renamed"),
                                                                        ("bb", "i")]
    store.mirrors.save_peers(src, {"aa": [(onion(3), 80, 0, 5.0)],
                                   "bb": [(onion(4), 80, 7, 1.0)]})
    store.mirrors.save_peers(src, {"aa": [(onion(5), 80, 0, 5.0)],
                                   "bb": [(onion(4), 80, 7, 1.0)]})  # replaces them all
    assert [p[:3] for p in store.mirrors.peers(src, "aa", 60)] == [(onion(5), 80, 0)]
    assert store.mirrors.peers(src, "aa", 1.0) == []  # older than max_age
    store.mirrors.remove_item(src, "bb")
    assert [i.infohash for i in store.mirrors.items(src)] == ["aa"]
    assert store.mirrors.peers(src, "bb", 60) == []
    store.mirrors.remove(src)
    assert store.mirrors.items(src) == [] and store.mirrors.peers(src, "aa", 60) == []


# -- releases ---------------------------------------------------------------------------
def test_releases_put_replace_and_get(store):
    first = ReleaseRow("r1", "1.0", b"m", b"s", added=2.0)
    store.releases.put(first)
    store.releases.put(ReleaseRow("r0", "0.9", b"m0", b"s0", added=1.0))
    store.releases.put(dataclasses.replace(first, state="verified", path="/r"))
    assert [(r.id, r.state) for r in store.releases.all()] == [("r0", "fetching"),
                                                             ("r1", "verified")]
    assert store.releases.get("r1").path == "/r" and store.releases.get("nope") is None
    assert "b'm'" not in repr(store.releases.get("r1"))  # nor the manifest's bytes
