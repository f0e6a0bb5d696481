"""Issue 2.9: a download grows its paths (another circuit to the seeder's onion at a time)
while each adds at least 15 % to its rate, and stays put when one adds nothing.

Through the CLI on the private network. The seeders share on one onion, so every path past
the first is a lane: a loopback endpoint of its own, dialled through Tor with an isolation
of its own, a rendezvous circuit of its own to the same onion service. "Adds nothing" is a
seeder whose upload is its limit (``upload_rate``, as a seeder serving many downloaders at
once): however many circuits reach it, it sends no faster. The rate of each path tried is
printed.

(A cap on the downloader's own ``download_rate`` is no such case: libtorrent's limiter
holding back reads starves one Tor circuit's congestion window, so a second circuit does
raise the rate, and the download grows, rightly, until the cap is reached.)
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from .conftest import Node
from .test_node_lifecycle import row, wait_until
from .test_operations import make_share
from .test_share_get import digests

CAP = 400_000  # bytes/s the slow seeder sends at most


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, testnet):
    """A downloader with the shipped path settings, and a seeder with a capped upload."""
    root = tmp_path_factory.mktemp("growth")
    downloader, slow = Node(root / "downloader", testnet), Node(root / "slow-seeder", testnet)
    downloader.configure(onions=1, announce_interval=10)
    slow.configure(onions=1, announce_interval=10, upload_rate=CAP)
    started = []
    try:
        for node in (downloader, slow):
            node.start()
            started.append(node)
        yield downloader, slow
    finally:
        for node in started:
            node.stop()


def follow(node: Node, tid: str, timeout: float) -> dict:
    """Poll ``obt list --peers`` until the download completes; the last reading."""
    last: dict = {}

    def done():
        nonlocal last
        proc = node.run("list", "--peers", tid, "--json")
        if proc.returncode == 0:
            last = json.loads(proc.stdout)
        return (row(node, tid) or {}).get("state") == "complete"

    wait_until(done, timeout, "the download", step=0.5, show=lambda: (last, node.log()))

    def settled():  # the growth ends within a tick of the download (a lane being tried closed)
        nonlocal last
        last = node.json("list", "--peers", tid)
        return last["growth"] and last["growth"]["state"] == "settled"

    wait_until(settled, 10, "the growth to settle", show=lambda: last)
    return last


def lanes(paths: list[dict]) -> list[dict]:
    return [p for p in paths if p["direction"] == "out" and p["lane"] > 0]


def test_paths_grow_while_each_adds_and_every_lane_reaches_the_same_onion(
        node_a, nodes, tmp_path):
    fast, _ = nodes  # node_a shares with no cap
    src = make_share(tmp_path, 256)
    info = node_a.json("share", str(src), "--onions", "1")
    (seeder_onion,) = [o.removesuffix(".onion") for o in info["onions"]]
    fast.json("get", info["uri"], "-o", str(tmp_path / "out"), "--no-wait")
    seen = follow(fast, info["infohash"], 300)
    assert digests(tmp_path / "out" / src.name) == digests(src)
    growth = seen["growth"]
    print("\ngrowth:", growth)
    steps = growth["steps"]
    assert steps and steps[0]["kept"], growth  # the second circuit added >= 15 %
    assert steps[0]["rate_after"] >= 1.15 * steps[0]["rate_before"]
    kept = sum(s["kept"] for s in steps)
    out = [p for p in seen["paths"] if p["direction"] == "out"]
    assert {p["onion"] for p in out} == {seeder_onion}  # lanes to the seeder's one onion
    assert len(lanes(out)) == kept  # a dropped lane is closed again
    for lane in lanes(out):
        assert lane["down"] > 0, lane  # it carried payload
        host = lane["endpoint"].rsplit(":", 1)[0]
        assert ipaddress.ip_address(host) in ipaddress.ip_network("127.64.0.0/10")
    assert len({p["endpoint"] for p in out}) == len(out)
    assert growth["paths"] == 1 + kept


def test_paths_stay_put_when_another_adds_nothing(nodes, tmp_path):
    downloader, slow = nodes
    src = make_share(tmp_path, 24)
    info = slow.json("share", str(src), "--onions", "1")
    downloader.json("get", info["uri"], "-o", str(tmp_path / "out"), "--no-wait")
    seen = follow(downloader, info["infohash"], 240)
    assert digests(tmp_path / "out" / src.name) == digests(src)
    growth = seen["growth"]
    print("\ngrowth:", growth)
    assert growth["state"] == "settled" and growth["paths"] == 1, growth
    (step,) = growth["steps"]  # one path tried, and dropped
    assert not step["kept"] and step["rate_after"] < 1.15 * step["rate_before"]
    assert step["rate_before"] <= 1.2 * CAP
    assert lanes(seen["paths"]) == []  # the lane tried was closed
    text = downloader.run("list", "--peers", info["infohash"]).stdout
    assert "paths: 1 of at most 8 (settled: path 2 added" in text, text
