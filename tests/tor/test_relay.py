"""Issue 4 of the plan: every node a middle relay; the ratio is earned by relaying.

One story on the private network: node A runs a relay and has a tiny free base; a seeder
S; node C routes all its circuits through A's relay (EntryNodes), so what C downloads is
relayed by A for someone else.
"""

from __future__ import annotations

import os
import secrets
import signal
import time

import pytest

from onionshare_bt.tor.testnet import Testnet

from .conftest import BASE_PORT, RELAYS, Node
from .test_node_lifecycle import row, wait_until
from .test_share_get import digests

FREE_BASE = 3 * 1024 * 1024
MB = 1024 * 1024


@pytest.fixture(scope="module")
def relay_net(tmp_path_factory):
    """A private network of this module's own: relays that join and leave a network stay
    in its consensus for a while, and would slow every later test on a shared one."""
    net = Testnet(tmp_path_factory.mktemp("relay-testnet"), base_port=BASE_PORT + 500,
                  relays=RELAYS)
    try:
        yield net.up(timeout=90)
    finally:
        net.down()


@pytest.fixture(scope="module")
def net(tmp_path_factory, relay_net):
    root = tmp_path_factory.mktemp("relay")
    a, s, c = (Node(root / n, relay_net) for n in ("a", "s", "c"))
    a.configure(relay=True, free_base=FREE_BASE, ratio=1.0, relay_nickname="obtA",
                relay_rate=20 * MB, relay_burst=40 * MB, announce_interval=10)
    a.start()
    # the seeder's circuits avoid A's relay, so A's own download is never relayed by A
    # (on a 5-relay network that would be likely; on the real network it is rare)
    fingerprint = a.json("relay", "status")["fingerprint"]
    s.configure(announce_interval=10, tor_options=[["ExcludeNodes", f"${fingerprint}"]])
    s.start()
    src = root / "src" / "payload"
    src.mkdir(parents=True)
    (src / "data.bin").write_bytes(secrets.token_bytes(12 * MB))
    info = s.json("share", str(src))
    yield {"a": a, "s": s, "c": c, "root": root, "src": src, "info": info}
    for node in (a, s, c):
        node.stop()


def test_relay_joins_the_consensus_as_running_and_valid(net):
    a = net["a"]
    status = wait_until(lambda: (st := a.json("relay", "status"))["in_consensus"] and st,
                        120, "the relay in the consensus", step=1)
    assert {"Running", "Valid"} <= set(status["flags"])
    assert len(status["fingerprint"]) == 40 and status["nickname"] == "obtA"
    assert status["rate_limit"] == 20 * MB
    assert "Exit" not in status["flags"]
    net["fingerprint"] = status["fingerprint"]


def test_download_pauses_at_the_allowance_then_relaying_earns_the_rest(net):
    a, c, info = net["a"], net["c"], net["info"]
    tid = info["infohash"]
    relayed_before = a.json("ratio")["relayed"]
    a.json("get", info["uri"], "-o", str(net["root"] / "a-out"), "--no-wait")
    gated = wait_until(
        lambda: (r := row(a, tid)) and r["state"] == "waiting for relay credit" and r,
        120, "the gate", show=lambda: (row(a, tid), a.json("ratio")))
    ratio = a.json("ratio")
    assert ratio["exhausted"] and ratio["used"] >= ratio["allowance"]
    assert gated["done"] < info["size"]
    time.sleep(3)
    assert row(a, tid)["done"] == gated["done"] or row(a, tid)["state"] != "complete"
    # A's own download did not pass through A's relay (its client excludes it)
    own = a.json("ratio")["relayed"] - relayed_before
    assert own < gated["done"] / 2, (own, gated["done"])

    # C sends all its traffic through A's relay: A relays C's download for C
    c.configure(tor_options=[["EntryNodes", f"${net['fingerprint']}"], ["StrictNodes", "1"]],
                announce_interval=10)
    c.start()
    before = a.json("ratio")["relayed"]
    got = c.json("get", info["uri"], "-o", str(net["root"] / "c-out"), timeout=300)
    assert got["state"] == "complete"
    wait_until(lambda: a.json("ratio")["relayed"] - before >= info["size"], 30,
               "A's ledger to count what it relayed", show=lambda: a.json("ratio"))

    # with the credit earned, A's download resumes by itself and completes
    wait_until(lambda: (row(a, tid) or {}).get("state") == "complete", 240, "A completes",
               show=lambda: (row(a, tid), a.json("ratio")))
    assert digests(net["root"] / "a-out" / "payload") == digests(net["src"])
    assert digests(net["root"] / "c-out" / "payload") == digests(net["src"])


def test_ledger_survives_node_and_relay_restarts_without_double_counting(net):
    a = net["a"]
    before = a.json("ratio")["relayed"]
    a.stop()
    a.start()
    after_node = a.json("ratio")["relayed"]
    # kept, and not counted again: a second count would add all of ``before`` at once;
    # the relay goes on carrying the other nodes' circuits meanwhile, which does count
    assert before <= after_node < before + max(2 * MB, before // 2)
    relay_pid = a.json("relay", "status")["pid"]
    os.kill(relay_pid, signal.SIGKILL)
    wait_until(lambda: a.json("relay", "status")["restarts"] >= 1, 90, "the relay restart")
    time.sleep(2)
    after_relay = a.json("ratio")["relayed"]
    assert after_node <= after_relay < after_node + max(2 * MB, after_node // 2)
    assert a.json("relay", "status")["pid"] != relay_pid
