"""Issue 3 of the plan: a share on K onion services, a download spread over all of them."""

from __future__ import annotations

import pytest

from .conftest import Node
from .test_node_lifecycle import row, wait_until
from .test_operations import make_share
from .test_share_get import digests


@pytest.fixture(scope="module")
def pair(tmp_path_factory, testnet):
    root = tmp_path_factory.mktemp("mux")
    seeder, leecher = Node(root / "seeder", testnet), Node(root / "leecher", testnet)
    for node in (seeder, leecher):
        node.configure(onions=2, announce_interval=10)
        node.start()
    yield seeder, leecher
    seeder.stop()
    leecher.stop()


def out_paths(node: Node, tid: str) -> dict[str, int]:
    """Bytes received from each remote onion (over every lane to it)."""
    down: dict[str, int] = {}
    for p in node.json("list", "--peers", tid)["paths"]:
        if p["direction"] == "out":
            down[p["onion"]] = down.get(p["onion"], 0) + p["down"]
    return down


def test_both_paths_of_a_k2_download_carry_payload(pair, tmp_path):
    seeder, leecher = pair
    src = make_share(tmp_path, 32)
    info = seeder.json("share", str(src), "--onions", "2")
    assert len(info["onions"]) == 2
    result = leecher.json("get", info["uri"], "-o", str(tmp_path / "out"))
    assert result["state"] == "complete"
    assert digests(tmp_path / "out" / src.name) == digests(src)
    down = out_paths(leecher, info["infohash"])
    seeder_onions = {o.removesuffix(".onion") for o in info["onions"]}
    assert set(down) == seeder_onions
    total = sum(down.values())
    assert total >= info["size"]
    for onion, count in down.items():
        assert count >= 0.05 * info["size"], f"path {onion[:8]} carried only {count} of {total}"


def test_download_completes_when_one_of_two_onions_is_withdrawn_mid_transfer(pair, tmp_path):
    seeder, leecher = pair
    src = make_share(tmp_path, 48)
    info = seeder.json("share", str(src), "--onions", "2")
    tid = info["infohash"]
    uri_onion = info["uri"].split("/")[2].removesuffix(".onion")
    other = next(o.removesuffix(".onion") for o in info["onions"]
                 if o.removesuffix(".onion") != uri_onion)
    leecher.json("get", info["uri"], "-o", str(tmp_path / "out"), "--no-wait")
    wait_until(lambda: (row(leecher, tid) or {}).get("progress", 0) >= 0.15, 120, "15 %")
    refused = seeder.run("unshare", tid, "--onion", uri_onion)
    assert refused.returncode == 2 and "URI" in refused.stderr
    withdrawn = seeder.json("unshare", tid, "--onion", other)
    assert withdrawn["onions"] == [f"{uri_onion}.onion"]
    at_withdrawal = out_paths(leecher, tid)[other]
    wait_until(lambda: (row(leecher, tid) or {}).get("state") == "complete", 240, "completion",
               show=lambda: (row(leecher, tid), out_paths(leecher, tid)))
    assert digests(tmp_path / "out" / src.name) == digests(src)
    after = out_paths(leecher, tid)
    # the withdrawn path stopped (a block or two in flight may still land)
    assert after[other] - at_withdrawal < 2 * 1024 * 1024
    assert after[uri_onion] > 0
