"""Issue 5 of the plan: public shares and the web of trust, on four real nodes.

A trusts B, B trusts C, C trusts D, D trusts A (a cycle). B, C and D each publish one
share; B also keeps a private one.
"""

from __future__ import annotations

import json
import secrets

import pytest

from .conftest import Node
from .test_share_get import UNSERVED, digests

#: one story: each step relies on the ones before (see conftest.py)
pytestmark = pytest.mark.incremental


@pytest.fixture(scope="module")
def web(tmp_path_factory, testnet):
    root = tmp_path_factory.mktemp("trust")
    nodes = {n: Node(root / n, testnet) for n in "abcd"}
    for node in nodes.values():
        node.configure(trust_timeout=10)
        node.start()
    ids = {n: node.json("node", "id")["onion"] for n, node in nodes.items()}
    for truster, trusted in ("ab", "bc", "cd", "da"):
        nodes[truster].json("trust", "add", ids[trusted])
    shares = {}
    for n in "bcd":
        src = root / f"src-{n}" / f"holiday-{n}"
        src.mkdir(parents=True)
        (src / "photo.jpg").write_bytes(secrets.token_bytes(256 * 1024 + ord(n)))
        info = nodes[n].json("share", str(src))
        described = ("--description", "Sunset over Porto") if n == "c" else ()
        published = nodes[n].json("publish", "--public", info["infohash"], *described)
        shares[n] = {**info, "src": src, "public_uri": published["public_uri"]}
    secret = root / "src-b" / "diary-private"
    secret.mkdir()
    (secret / "diary.txt").write_text("nobody may find this\n")
    shares["private"] = nodes["b"].json("share", str(secret))
    yield {"nodes": nodes, "ids": ids, "shares": shares, "root": root}
    for node in nodes.values():
        node.stop()


def found(node: Node, *terms: str) -> set[str]:
    return {r["name"] for r in node.json("search", *terms)["results"]}


def test_search_reaches_exactly_the_trust_depth(web):
    a = web["nodes"]["a"]
    assert found(a, "holiday") == {"holiday-b"}
    a.json("trust", "depth", "2")
    assert found(a, "holiday") == {"holiday-b", "holiday-c"}
    by_description = a.json("search", "PORTO")["results"]  # a word of C's description only
    assert [(r["name"], r["description"]) for r in by_description] == [
        ("holiday-c", "Sunset over Porto")]
    a.json("trust", "depth", "3")
    results = a.json("search", "holiday")["results"]
    assert {r["name"]: r["degree"] for r in results} == {
        "holiday-b": 1, "holiday-c": 2, "holiday-d": 3}
    a.json("trust", "depth", "6")  # the cycle D -> A ends the walk; nothing is visited twice
    graph = a.json("trust", "graph")
    visited = [n["onion"] for n in graph["nodes"]]
    assert len(visited) == len(set(visited)) == 3
    assert web["ids"]["a"].removesuffix(".onion") not in visited
    a.json("trust", "depth", "3")


def test_private_shares_never_show_and_their_onions_never_leak(web):
    a = web["nodes"]["a"]
    private = web["shares"]["private"]
    for node in web["nodes"].values():
        assert "diary-private" not in found(node, "diary") | found(node, "private")
    public_uri = web["shares"]["b"]["public_uri"]
    listing = json.loads(a.run("get", public_uri, "--json").stdout)
    served = json.dumps(listing) + json.dumps(a.fetch_torrent(
        f"http://{web['ids']['b']}/node")[1].decode())
    for onion in private["onions"] + [private["uri"]]:
        assert onion.removesuffix(".onion") not in served
    assert [i["name"] for i in listing["items"]] == ["holiday-b"]


def test_a_search_result_downloads_byte_identical(web, tmp_path):
    a = web["nodes"]["a"]
    hit = next(r for r in a.json("search", "holiday-d")["results"])
    got = a.json("get", hit["uri"], "-o", str(tmp_path))
    assert got["state"] == "complete"
    assert digests(tmp_path / "holiday-d") == digests(web["shares"]["d"]["src"])
    picked = a.json("get", web["shares"]["c"]["public_uri"], "--pick", "holiday-c",
                    "-o", str(tmp_path / "picked"))
    assert digests(tmp_path / "picked" / "holiday-c") == digests(web["shares"]["c"]["src"])
    assert picked["state"] == "complete"


@pytest.mark.parametrize("address, reason", [
    ("duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion".replace("gg42", "gg43"),
     "checksum"),
    ("expyuzz4wqqyqhjn.onion", "v2 addresses"),
    ("not an onion at all", "onion"),
    ("http://" + "a" * 56 + ".onion/node", "version byte"),
])
def test_invalid_onion_addresses_are_refused_with_the_reason(web, address, reason):
    proc = web["nodes"]["a"].run("trust", "add", address)
    assert proc.returncode == 2, proc.stderr
    assert reason in proc.stderr and "Traceback" not in proc.stderr


def test_an_offline_trusted_node_is_reported_and_search_still_answers(web):
    a = web["nodes"]["a"]
    a.json("trust", "add", f"http://{UNSERVED}.onion/whatever")
    try:
        graph = a.json("trust", "graph")
        offline = [n for n in graph["nodes"] if n["onion"] == UNSERVED]
        assert offline and offline[0]["reachable"] is False and offline[0]["error"]
        result = a.json("search", "holiday")
        assert {r["name"] for r in result["results"]} == {"holiday-b", "holiday-c", "holiday-d"}
        assert UNSERVED in {u["onion"] for u in result["unreachable"]}
        proc = a.run("trust", "graph")
        assert proc.returncode == 0 and "UNREACHABLE" in proc.stdout
    finally:
        a.json("trust", "remove", UNSERVED)
