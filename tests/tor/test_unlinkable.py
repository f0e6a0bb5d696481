"""Unlinkability as a test: what a share or a download shows a stranger is not node-constant.

A probe with a tor of its own talks to every onion it is given, as any peer or downloader
would: the tracker over HTTP (the .torrent and an announce) and the BitTorrent handshake and
extension handshake on the peer port. It records every value it is shown. Two shares of one
node (A1, A2) are compared with a share of another node (C1); two downloads of one downloader
(B's seed-back onions for X and Y) with a download of another (A's for Y). A value that is
equal on both of one node's onions but different on the other node's is constant per node:
it links the two, and fails the test. Values random per share or download differ everywhere;
values that are the product's own constants are equal everywhere. All shares have the same
shape (one folder, one 1 MiB file of fresh random bytes, the same names), so that nothing
torrent-specific is mistaken for either.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import urllib.parse

import bencodepy
import libtorrent as lt
import pytest

from onionshare_bt.tor import socks
from tests.tor.conftest import Node, _node

PROTOCOL = b"\x13BitTorrent protocol"
#: swarm state, not node identity: how many peers a swarm has depends on who joined it
SWARM_STATE = {"announce.complete", "announce.incomplete", "announce.peers",
               "announce.downloaded"}
#: headers that would carry a clock, a software name or a tracking token
FORBIDDEN_HEADERS = {"date", "server", "set-cookie", "etag", "last-modified", "x-powered-by"}


@pytest.fixture(scope="module")
def node_c(tmp_path_factory, testnet):
    yield from _node(tmp_path_factory, testnet, "node-c")


def _share(node: Node, root) -> dict:
    folder = root / "probe"
    folder.mkdir(parents=True)
    (folder / "f.bin").write_bytes(secrets.token_bytes(1024 * 1024))
    return node.json("share", str(folder))


@pytest.fixture(scope="module")
def shares(node_a, node_c, tmp_path_factory):
    return {name: _share(node, tmp_path_factory.mktemp(f"probe-{name}"))
            for name, node in (("A1", node_a), ("A2", node_a), ("C1", node_c))}


def _probe(adversary, onion: str, info_hash: bytes, uri: str | None) -> dict:
    record = {}
    record.update(adversary.call(_peer_wire(adversary.tor.socks_address, onion, info_hash)))
    if uri is not None:
        record.update(_tracker(adversary, uri))
    return record


async def _peer_wire(socks_address, onion: str, info_hash: bytes) -> dict:
    loop = asyncio.get_running_loop()
    reader, writer = await socks.open_connection(
        socks_address, f"{onion}.onion", 6881, timeout=60, retry_until=loop.time() + 90)
    try:
        reserved = bytearray(8)
        reserved[5] |= 0x10
        writer.write(PROTOCOL + bytes(reserved) + info_hash + secrets.token_bytes(20))
        ext = bencodepy.encode({b"m": {b"ut_metadata": 1}})
        writer.write(struct.pack("!IBB", len(ext) + 2, 20, 0) + ext)
        await writer.drain()
        hs = await asyncio.wait_for(reader.readexactly(68), 60)
        record = {"bt.protocol": hs[:20], "bt.reserved": hs[20:28], "bt.info_hash": hs[28:48],
                  "bt.peer_id": hs[48:68]}
        order = []
        async with asyncio.timeout(30):
            while True:
                (length,) = struct.unpack("!I", await reader.readexactly(4))
                if not length:
                    continue
                payload = await reader.readexactly(length)
                order.append(payload[0])
                if payload[0] == 20 and payload[1] == 0:
                    for key, value in _flatten("ext", bencodepy.decode(payload[2:])).items():
                        record[key] = value
                    break
                record[f"bt.msg{payload[0]}.len"] = len(payload)
        record["bt.order"] = tuple(order)
        return record
    finally:
        writer.close()


def _tracker(adversary, uri: str) -> dict:
    record = {}
    status, headers, body = adversary.request("GET", uri)
    record.update(_headers("torrent", status, headers))
    info_hash = lt.torrent_info(body).info_hashes().v1.to_bytes()
    query = urllib.parse.urlencode({"info_hash": info_hash, "peer_id": secrets.token_bytes(20),
                                    "uploaded": 0, "downloaded": 0, "left": 0})
    status, headers, body = adversary.request("GET", f"{uri}/announce?{query}")
    record.update(_headers("announce", status, headers))
    record.update(_flatten("announce", bencodepy.decode(body)))
    return record


def _headers(prefix: str, status: int, headers: dict) -> dict:
    return {f"{prefix}.status": status,
            f"{prefix}.header-names": tuple(sorted(k.lower() for k in headers)),
            **{f"{prefix}.header.{k.lower()}": v for k, v in headers.items()}}


def _flatten(prefix: str, value) -> dict:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = key.decode("latin-1") if isinstance(key, bytes) else str(key)
            out.update(_flatten(f"{prefix}.{name}", item))
        return out or {prefix: "{}"}
    if isinstance(value, list):
        return {prefix: repr(value)}
    return {prefix: value}


def node_constants(one: dict, two: dict, other: dict) -> list[str]:
    """Keys whose value is the same on one node's two onions and different on another's."""
    return sorted(
        key for key in one.keys() | two.keys() | other.keys()
        if key not in SWARM_STATE and one.get(key) == two.get(key) != other.get(key)
    )


def _check(records: dict[str, dict], one: str, two: str, other: str) -> None:
    found = node_constants(records[one], records[two], records[other])
    assert found == [], (
        f"values constant per node link {one} and {two}: "
        + "; ".join(f"{k}={records[one].get(k)!r} (other node: {records[other].get(k)!r})"
                    for k in found))
    for name, record in records.items():
        for key in record:
            if key.endswith("header-names"):
                assert not FORBIDDEN_HEADERS & set(record[key]), (name, key, record[key])
    # the probe saw something: an empty record would pass every comparison
    assert all(records[n].get("bt.peer_id") for n in (one, two, other))
    assert records[one]["bt.peer_id"] != records[two]["bt.peer_id"]


def test_two_shares_of_one_node_show_nothing_node_constant(adversary, shares):
    records = {}
    for name, info in shares.items():
        onion = info["onions"][0].removesuffix(".onion")
        records[name] = _probe(adversary, onion, bytes.fromhex(info["infohash"]), info["uri"])
    # every onion of a share, not just the first, answers alike
    second = shares["A1"]["onions"][1].removesuffix(".onion")
    records["A1b"] = _probe(adversary, second, bytes.fromhex(shares["A1"]["infohash"]), None)
    assert records["A1b"]["ext.m.ut_metadata"] == records["A1"]["ext.m.ut_metadata"]
    _check(records, "A1", "A2", "C1")
    assert "ext.yourip" not in records["A1"] and "ext.p" not in records["A1"]
    assert "ext.v" not in records["A1"] and "ext.m.ut_holepunch" not in records["A1"]


def test_two_downloads_of_one_downloader_show_nothing_node_constant(
        adversary, shares, node_a, node_b, tmp_path):
    gets = (("B-X", node_b, "A1"), ("B-Y", node_b, "C1"), ("A-Y", node_a, "C1"))
    onions = {}
    for name, node, share in gets:
        proc = node.run("get", shares[share]["uri"], "-o", str(tmp_path / name), "--json")
        assert proc.returncode == 0, proc.stderr + node.log()
        row = next(r for r in node.json("list") if r["id"] == shares[share]["infohash"])
        onions[name] = (row["onions"][0].removesuffix(".onion"), share)
    # the seed-back onions were published without waiting for their upload: the probe's
    # dial retries "descriptor not found" (socks.TRANSIENT) for up to 90 s
    records = {name: _probe(adversary, onion, bytes.fromhex(shares[share]["infohash"]), None)
               for name, (onion, share) in onions.items()}
    _check(records, "B-X", "B-Y", "A-Y")
