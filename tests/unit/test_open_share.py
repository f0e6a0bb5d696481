"""Open shares, pure parts: announces from clients nobody can dial, and the .torrent that
names a share's trackers."""

from __future__ import annotations

import sqlite3
import urllib.parse

import bencodepy
import libtorrent as lt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onionshare_bt import config
from onionshare_bt.errors import UsageError
from onionshare_bt.store import SCHEMA_VERSION, Store, TorrentRow
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker import core, metafile

IH = b"\xaa" * 20
SEED = onion_from_pubkey(b"\x01" * 32)
PEER = onion_from_pubkey(b"\x02" * 32)
LEECH = onion_from_pubkey(b"\x03" * 32)
FOURTH = onion_from_pubkey(b"\x04" * 32)


def announce(**overrides) -> core.Announce:
    params = {"info_hash": IH, "peer_id": b"\xbb" * 20, "ip": f"{PEER}.onion", "port": 6881,
              "left": 100, "event": "started"}
    params.update(overrides)
    return core.parse_announce(urllib.parse.urlencode(
        {k: v for k, v in params.items() if v is not None}))


def standard_client(peer_id: bytes = b"A2-1-36-0-" + b"x" * 10, **overrides) -> core.Announce:
    """What aria2c under torsocks sends: its listen port, no ip."""
    return announce(ip=None, port=6890, peer_id=peer_id, **overrides)


# -- announces --------------------------------------------------------------------------
def test_a_port_without_an_onion_is_an_unreachable_client():
    a = standard_client()
    assert (a.onion, a.port, a.unreachable) == ("", 6890, True)
    observer = announce(ip=None, port=None)
    assert (observer.port, observer.unreachable) == (0, False)
    assert not announce().unreachable


@pytest.mark.parametrize("overrides, reason", [
    ({"ip": None, "port": 0}, "port"),
    ({"ip": None, "port": 70000}, "port"),
    ({"ip": None, "port": "x"}, "port"),
    ({"ip": "", "port": 6890}, "onion"),
    ({"ip": "10.0.0.1", "port": 6890}, "onion"),  # an IP address is still refused
    ({"ip": "example.com", "port": 6890}, "onion"),
])
def test_bad_unreachable_announces_are_refused(overrides, reason):
    with pytest.raises(core.AnnounceError, match=reason):
        announce(**overrides)


def test_a_closed_share_refuses_unreachable_clients_and_admits_the_rest():
    with pytest.raises(core.AnnounceError) as info:
        core.admit(standard_client(), open_share=False)
    assert str(info.value) == core.CLOSED_REASON
    assert "this share admits obt nodes only" in core.CLOSED_REASON
    assert "obt publish --open" in core.CLOSED_REASON
    for kind in (announce(), announce(ip=None, port=None)):
        core.admit(kind, open_share=False)
        core.admit(kind, open_share=True)
    core.admit(standard_client(), open_share=True)


# -- the swarm --------------------------------------------------------------------------
def swarm_with_peers() -> core.PeerTable:
    swarm = core.PeerTable(ttl=100)
    swarm.set_fixed(IH, [(SEED, 6881)])
    swarm.announce(announce(ip=f"{LEECH}.onion", left=5, peer_id=b"l" * 20), now=1.0)
    swarm.announce(announce(ip=f"{PEER}.onion", left=0, peer_id=b"s" * 20), now=2.0)
    return swarm


def test_an_unreachable_client_gets_every_peer_seeders_first():
    swarm = swarm_with_peers()
    got = swarm.announce(standard_client(), now=3.0)
    # the fixed seeder, the announced seeder, then the leecher (it has pieces too)
    assert got == [(SEED, 6881), (PEER, 6881), (LEECH, 6881)]
    assert swarm.announce(standard_client(numwant=2), now=3.0) == [(SEED, 6881), (PEER, 6881)]


def test_an_unreachable_client_is_never_listed_saved_or_passed_on():
    swarm = swarm_with_peers()
    assert swarm.record(standard_client(), now=3.0) is False  # nothing saved or synced
    assert swarm.size(IH) == 2
    assert {e[0] for e in swarm.entries(IH, now=3.0)} == {SEED, PEER, LEECH}
    other = announce(ip=f"{FOURTH}.onion", peer_id=b"o" * 20)
    assert all(port == 6881 for _, port in swarm.announce(other, now=3.0))
    assert len(swarm.announce(other, now=3.0)) == 3  # SEED, PEER, LEECH: no client


def test_unreachable_clients_count_as_leechers_until_they_stop_or_expire():
    swarm = swarm_with_peers()
    assert swarm.counts(IH) == (2, 1)
    swarm.announce(standard_client(left=0), now=3.0)  # done, but nobody can fetch from it
    swarm.announce(standard_client(peer_id=b"B" * 20), now=4.0)
    swarm.announce(standard_client(peer_id=b"B" * 20), now=5.0)  # the same client again
    assert swarm.counts(IH) == (2, 3)
    assert swarm.unreachable(IH, now=5.0) == 2
    swarm.announce(standard_client(peer_id=b"B" * 20, event="stopped"), now=6.0)
    assert swarm.counts(IH) == (2, 2)
    assert swarm.unreachable(IH, now=104.0) == 0  # silent for longer than the ttl
    swarm.drop(IH)
    assert swarm.counts(IH) == (0, 0)


def test_unreachable_clients_are_capped_per_torrent():
    swarm = core.PeerTable(ttl=100, max_peers=3)
    for i in range(10):
        swarm.announce(standard_client(peer_id=bytes([65 + i]) * 20), now=float(i))
    assert swarm.unreachable(IH, now=10.0) == 3
    assert swarm.size(IH) == 0


# -- the .torrent as served ----------------------------------------------------------------
@pytest.fixture(scope="module")
def torrent(tmp_path_factory) -> bytes:
    from onionshare_bt.engine.metainfo import create_share

    folder = tmp_path_factory.mktemp("share") / "holiday"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"a" * 70_000)
    (folder / "sub" / "b.txt").write_bytes(b"b" * 5)
    return create_share(folder).meta.data


def hashes(data: bytes):
    info = lt.torrent_info(data)
    return info.info_hashes().v1.to_bytes(), info.info_hashes().v2.to_bytes()


def test_the_served_torrent_names_every_tracker_and_keeps_the_info_hash(torrent):
    own = [metafile.announce_url(o, "T" * 32) for o in (SEED, PEER)]
    mirror = [metafile.announce_url(LEECH, "T" * 32)]
    served = metafile.with_trackers(torrent, [own, mirror])
    assert hashes(served) == hashes(torrent)
    data = bencodepy.decode(served)
    assert data[b"announce"] == own[0].encode()
    assert data[b"announce-list"] == [[u.encode() for u in own], [mirror[0].encode()]]
    assert set(data) == {b"announce", b"announce-list", b"info", b"piece layers"}
    assert own[0] == f"http://{SEED}.onion/private/{'T' * 32}/announce"
    params = lt.load_torrent_buffer(served)  # as a libtorrent-based client reads it
    assert list(params.trackers) == own + mirror
    assert list(params.tracker_tiers) == [0, 0, 1]


def test_serving_again_replaces_the_trackers_and_drops_foreign_keys(torrent):
    hostile = bencodepy.decode(torrent)
    hostile.update({b"announce": b"http://198.51.100.7/announce", b"url-list": b"http://x/",
                    b"nodes": [[b"203.0.113.9", 6881]], b"comment": b"hi",
                    b"httpseeds": [b"http://y/"]})
    url = metafile.announce_url(SEED, "T" * 32)
    served = metafile.with_trackers(bencodepy.encode(hostile), [[url], [url], []])
    data = bencodepy.decode(served)
    assert set(data) == {b"announce", b"announce-list", b"info", b"piece layers"}
    assert data[b"announce-list"] == [[url.encode()]]  # a URL is named once, empty tiers go
    assert hashes(served) == hashes(torrent)
    assert metafile.with_trackers(served, [[url]]) == served


def test_no_tracker_means_no_announce_keys(torrent):
    served = metafile.with_trackers(torrent, [[], []])
    assert served == torrent  # info and piece layers only, as stored


def test_the_info_dict_is_copied_byte_for_byte_even_when_not_canonical():
    info = b"d4:name1:x12:piece lengthi16384e6:lengthi1e6:pieces20:" + b"p" * 20 + b"e"
    odd = b"d4:info" + info + b"e"  # keys out of order: re-encoding would change the hash
    served = metafile.with_trackers(odd, [["http://a.onion/private/t/announce"]])
    assert metafile.top_level(served)[b"info"] == info


@pytest.mark.parametrize("bad", [b"", b"le", b"d4:infoi1e", b"d4:infodee junk", b"di1e1:xe",
                                 b"d3:abc1:xe", b"d4:info" + b"l" * 200 + b"e" * 200 + b"e",
                                 b"d4:info5:abce"])
def test_malformed_torrents_are_refused(bad):
    with pytest.raises(ValueError):
        metafile.with_trackers(bad, [["http://a.onion/private/t/announce"]])


_values = st.recursive(
    st.integers() | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=6), inner,
                                                                  max_size=4),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.binary(max_size=8), _values, max_size=5))
def test_top_level_splits_any_bencoded_dictionary(value):
    data = bencodepy.encode(value)
    spans = metafile.top_level(data)
    assert {k: bencodepy.decode(v) for k, v in spans.items()} == value
    assert b"d" + b"".join(bencodepy.encode(k) + v for k, v in spans.items()) + b"e" == data


# -- the info-hash aria2 < 1.37 computes ------------------------------------------------------
def test_the_legacy_info_hash_drops_the_empty_keys_of_a_hybrid(torrent):
    import hashlib

    info = bencodepy.decode(metafile.top_level(torrent)[b"info"])
    assert b"file tree" in info  # a hybrid: each file's leaf has the empty key
    legacy = metafile.legacy_info_hash(torrent)
    assert legacy is not None and legacy != hashes(torrent)[0]
    tree = info[b"file tree"]
    assert b"" in tree[b"a.bin"]
    info[b"file tree"] = {b"a.bin": {}, b"sub": {b"b.txt": {}}}
    assert legacy == hashlib.sha1(bencodepy.encode(info)).digest()
    served = metafile.with_trackers(torrent, [["http://a.onion/private/t/announce"]])
    assert metafile.legacy_info_hash(served) == legacy  # trackers are outside info


def test_a_torrent_without_empty_keys_has_no_legacy_info_hash():
    v1 = bencodepy.encode({b"info": {b"name": b"x", b"length": 1, b"piece length": 16384,
                                     b"pieces": b"p" * 20}})
    assert metafile.legacy_info_hash(v1) is None
    assert metafile.legacy_info_hash(b"not bencode") is None
    assert metafile.legacy_info_hash(b"d4:infoi1ee") is None


def test_the_handshake_rename_touches_the_info_hash_only_in_any_chunking():
    from onionshare_bt.multiplex.core import PROTOCOL, HandshakeRename

    handshake = PROTOCOL + b"\x00" * 8 + b"R" * 20 + b"P" * 20 + b"rest of the stream"
    want = PROTOCOL + b"\x00" * 8 + b"A" * 20 + b"P" * 20 + b"rest of the stream"
    for size in (1, 3, 7, 28, 29, 48, 100):
        rename = HandshakeRename(b"A" * 20)
        out = b"".join(rename.feed(handshake[i:i + size])
                       for i in range(0, len(handshake), size))
        assert out == want, size
    with pytest.raises(ValueError):
        HandshakeRename(b"short")


# -- the store and the config -------------------------------------------------------------
V1_TORRENTS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE torrents (
    id TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('share', 'download')),
    name TEXT NOT NULL, save_path TEXT NOT NULL, target TEXT NOT NULL, torrent BLOB NOT NULL,
    token TEXT NOT NULL, uri TEXT NOT NULL, state TEXT NOT NULL, error TEXT, resume BLOB,
    added REAL NOT NULL, completed REAL
);
INSERT INTO meta VALUES ('schema', '1');
INSERT INTO torrents VALUES ('ab', 'share', 'n', '/x', '/x', x'00', 't', 'u', 'seeding',
                             NULL, NULL, 1.0, NULL);
"""


def test_a_version_1_database_is_upgraded_and_its_shares_stay_closed(tmp_path):
    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_TORRENTS)
    db.close()
    store = Store(path)
    assert store.torrents.get("ab").open == 0
    assert store.schema_version == SCHEMA_VERSION
    store.torrents.update("ab", open=1)
    store.close()
    again = Store(path)  # opening an upgraded database again changes nothing
    assert again.torrents.get("ab").open == 1


def test_a_new_database_stores_the_open_flag(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    row = TorrentRow(id="cd", role="share", name="n", save_path="/x", target="/x",
                     torrent=b"t", token="t", uri="u", state="seeding", error=None,
                     resume=None, added=1.0, completed=None, open=1)
    store.torrents.add(row, [])
    assert store.torrents.get("cd") == row
    assert store.schema_version == SCHEMA_VERSION


def test_open_shares_comes_from_the_config_file(tmp_path):
    assert config.load(home=tmp_path).open_shares is False
    (tmp_path / "config.toml").write_text("open_shares = true\n")
    assert config.load(home=tmp_path).open_shares is True
    (tmp_path / "config.toml").write_text('open_shares = "yes"\n')
    with pytest.raises(UsageError, match="open_shares"):
        config.load(home=tmp_path)
