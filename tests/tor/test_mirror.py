"""Issue 6/6, mirrors: A mirrors B's public tracker; the swarm outlives B.

Four real nodes on the session's private network: B publishes shares, A mirrors B with
``--follow``, X downloads from B (and so seeds), C downloads through A's mirror after B is
stopped for good. Peer-list sync is checked with announces made through Tor to the real
trackers, by made-up peers (valid onion addresses nobody serves).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest

from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker.client import TrackerClient
from onionshare_bt.tracker.metafile import top_level
from onionshare_bt.uri import ShareURI, parse_uri

from .conftest import Node
from .test_share_get import digests

#: one story: each step relies on the ones before (see conftest.py)
pytestmark = pytest.mark.incremental

#: the issue's bound for a peer to cross from one tracker to the other
SYNC_BOUND = 5.0


def make_folder(root, name: str, size: int):
    src = root / name
    src.mkdir(parents=True)
    (src / "data.bin").write_bytes(secrets.token_bytes(size))
    (src / "notes.txt").write_text(f"{name}\n")
    return src


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory, testnet):
    root = tmp_path_factory.mktemp("mirror")
    nodes = {n: Node(root / n, testnet) for n in "abcx"}
    for node in nodes.values():
        node.configure(trust_timeout=15)
        node.start()
    b_id = nodes["b"].json("node", "id")["onion"]
    # B takes A's pushes and names A's mirror only once it trusts A (mirror credential)
    nodes["b"].json("trust", "add", nodes["a"].json("node", "id")["onion"])
    src = make_folder(root / "src-b", "album", 3 * 1024 * 1024 + 7)
    share = nodes["b"].json("share", str(src))
    nodes["b"].json("publish", "--public", share["infohash"])
    mirror = nodes["a"].json("mirror", "add", b_id, "--follow")
    yield {"nodes": nodes, "root": root, "b_id": b_id, "share": share, "src": src,
           "mirror": mirror}
    for node in nodes.values():
        node.stop()


def mirror_item(mirror: dict, infohash: str) -> str:
    return next(i["uri"] for i in mirror["items"] if i["infohash"] == infohash)


def test_mirror_add_copies_the_catalogue_and_serves_it_on_a_new_onion(mirrored):
    a, c = mirrored["nodes"]["a"], mirrored["nodes"]["c"]
    mirror, share = mirrored["mirror"], mirrored["share"]
    assert mirror["added"] is True and mirror["follow"] is True
    onion = mirror["onion"]
    assert parse_uri(mirror["public_uri"]).onion == onion.removesuffix(".onion")
    assert onion != mirrored["b_id"] and onion != a.json("node", "id")["onion"]
    assert onion not in share["onions"]
    item_uri = mirror_item(mirror, share["infohash"])
    assert parse_uri(item_uri).token == parse_uri(share["uri"]).token
    # the metadata at the mirror is B's, byte for byte (each names its own trackers; the
    # mirror's name B's tracker, for standard clients: see test_torsocks_client.py)
    status, body = c.fetch_torrent(item_uri)
    assert status == 200
    origin = c.fetch_torrent(share["uri"])[1]
    assert top_level(body)[b"info"] == top_level(origin)[b"info"]
    assert top_level(body)[b"piece layers"] == top_level(origin)[b"piece layers"]
    assert share["uri"].encode() + b"/announce" in body
    # anyone lists the mirror's catalogue like a node's
    listing = json.loads(c.run("get", mirror["public_uri"], "--json").stdout)
    assert [i["name"] for i in listing["items"]] == ["album"]
    assert listing["items"][0]["uri"] == item_uri
    # running it again shows the same mirror
    again = a.json("mirror", "add", mirrored["b_id"], "--follow")
    assert again["added"] is False and again["onion"] == onion
    assert [m["onion"] for m in a.json("mirror", "list")] == [onion]


def test_a_share_published_later_appears_at_the_following_mirror(mirrored):
    a, b = mirrored["nodes"]["a"], mirrored["nodes"]["b"]
    src = make_folder(mirrored["root"] / "src-b2", "later", 200 * 1024)
    later = b.json("share", str(src))
    b.json("publish", "--public", later["infohash"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = {i["name"] for m in a.json("mirror", "list") for i in m["items"]}
        if "later" in names:
            break
        time.sleep(0.5)
    assert names == {"album", "later"}
    # and withdrawing it at B withdraws it at the mirror
    b.json("publish", "--private", later["infohash"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        names = {i["name"] for m in a.json("mirror", "list") for i in m["items"]}
        if names == {"album"}:
            break
        time.sleep(0.5)
    assert names == {"album"}


def fake_onion() -> str:
    return onion_from_pubkey(secrets.token_bytes(32))


class Announcer:
    """Announces made-up peers to real trackers through one node's tor."""

    def __init__(self, node: Node, infohash: str) -> None:
        self.socks = tuple(node.json("node", "status")["tor"]["socks"])
        self.infohash = bytes.fromhex(infohash)

    async def announce(self, http: TrackerClient, uri: ShareURI, onion: str) -> set[str]:
        params = {"info_hash": self.infohash, "peer_id": secrets.token_bytes(20),
                  "ip": f"{onion}.onion", "port": 6881, "uploaded": 0, "downloaded": 0,
                  "left": 1000, "numwant": 200}
        reply = await http.announce(uri, params, 60)
        return {o for o, _ in reply.peers}

    def crossing(self, to: ShareURI, via: ShareURI) -> float:
        """Announce a new peer to ``to``; seconds until ``via`` lists it."""
        async def run() -> float:
            http = TrackerClient(self.socks)
            await http.start()
            try:
                watcher, peer = fake_onion(), fake_onion()
                await self.announce(http, via, watcher)  # circuits warm before the clock runs
                await self.announce(http, to, watcher)
                started = time.monotonic()
                await self.announce(http, to, peer)
                while time.monotonic() - started < 60:
                    if peer in await self.announce(http, via, watcher):
                        return time.monotonic() - started
                    await asyncio.sleep(0.2)
                return float("inf")
            finally:
                await http.close()
        return asyncio.run(run())


def test_peers_cross_between_mirror_and_origin_within_the_bound(mirrored):
    c, share = mirrored["nodes"]["c"], mirrored["share"]
    origin = parse_uri(share["uri"])
    mirror = parse_uri(mirror_item(mirrored["mirror"], share["infohash"]))
    announcer = Announcer(c, share["infohash"])
    to_origin = announcer.crossing(to=mirror, via=origin)
    to_mirror = announcer.crossing(to=origin, via=mirror)
    print(f"mirror -> origin {to_origin:.2f} s, origin -> mirror {to_mirror:.2f} s")
    assert to_origin <= SYNC_BOUND
    assert to_mirror <= SYNC_BOUND


def test_the_swarm_survives_its_origin_through_the_mirror(mirrored, tmp_path):
    nodes, share, mirror = mirrored["nodes"], mirrored["share"], mirrored["mirror"]
    x, c, b = nodes["x"], nodes["c"], nodes["b"]
    got_x = x.run("get", share["uri"], "-o", str(tmp_path / "x"), "--json", "--timeout", "120")
    assert got_x.returncode == 0, got_x.stderr + x.log()
    # B's tracker named the mirror to its downloader, who now announces to both
    mirror_onion = mirror["onion"].removesuffix(".onion")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = next(r for r in x.json("list") if r["id"] == share["infohash"])
        if mirror_onion in row["trackers"]:
            break
        time.sleep(1)
    assert mirror_onion in row["trackers"]
    b.stop()
    assert b.run("node", "status").returncode == 1
    got_c = c.run("get", mirror["public_uri"], "--pick", "album", "-o", str(tmp_path / "c"),
                  "--json", "--timeout", "120", timeout=400)
    assert got_c.returncode == 0, got_c.stderr + c.log()
    assert digests(tmp_path / "c" / "album") == digests(mirrored["src"])
    # the pieces came from X: B is gone and a mirror holds no file data
    b_onions = {o.removesuffix(".onion") for o in share["onions"]}
    paths = c.json("list", "--peers", share["infohash"])["paths"]
    fed = {p["onion"] for p in paths if p["direction"] == "out" and p["down"] > 0}
    assert fed and not fed & b_onions
