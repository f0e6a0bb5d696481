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

from onionshare_bt.node import LEDGER_INTERVAL
from onionshare_bt.testnet import Testnet

from .conftest import BASE_PORT, RELAYS, Node
from .test_node_lifecycle import row, wait_until
from .test_share_get import digests

#: one story: each step relies on the ones before (see conftest.py)
pytestmark = pytest.mark.incremental

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


#: seconds the closed gate is watched (long enough for the background credit to reopen it
#: at times: once, with 195 KB to go, 3.2 MB came through in about a second, which
#: :func:`gate_leaks` reports)
GATE_WINDOW = 40.0
#: payload that may still arrive once the gate is closed: blocks already on their way
#: through Tor when libtorrent cancelled its requests (none arrived, in every run measured).
#: With a gate that does nothing (``Engine.gate`` a no-op), the rate cap's 16 KiB/s floor
#: still let ~95 KB through every 10-20 s; with no cap either, megabytes a second
SLACK = 64 * 1024


def watch_gate(a: Node, tid: str, seconds: float) -> list[dict]:
    """Sample A's ratio and the download once a second for ``seconds``."""
    samples = []
    began = time.monotonic()
    while (t := time.monotonic() - began) < seconds:
        ratio, r = a.json("ratio"), row(a, tid)
        samples.append({"t": round(t, 1), "used": ratio["used"],
                        "allowance": ratio["allowance"], "done": r["done"],
                        "state": r["state"]})
        time.sleep(1)  # the sampling interval of a measurement over a fixed window
    return samples


def gate_leaks(samples: list[dict], piece: int) -> list[str]:
    """What in ``samples``, taken while the gate is closed, shows payload getting past it
    ([] for nothing).

    The gate closes some way past the allowance (the overshoot); the relay earns credit all
    along, carrying others' traffic. Only credit beyond the overshoot opens the gate again,
    and the download may then take it, twice over at most (the rate cap lets it overshoot by
    about one ledger interval), plus :data:`SLACK`; a piece being checked as the gate closed
    may complete. The node's own count (``used``) and libtorrent's verified bytes (``done``)
    are both held to that.
    """
    first, last = samples[0], samples[-1]
    wrong = []
    for key, extra in (("used", 0), ("done", piece)):
        grew = last[key] - first[key]
        allowed = 2 * max(0, last["allowance"] - first[key]) + SLACK + extra
        if grew > allowed:
            wrong.append(f"{key} grew by {grew} bytes in {last['t']:g} s while closed, "
                         f"{first[key] - first['allowance']} bytes past the allowance "
                         f"(which grew to {last['allowance']}): {allowed} allowed")
    return wrong


def test_the_gate_check_finds_a_download_that_goes_on():
    """:func:`gate_leaks` on the shape measured here (flat while closed) and on leaks."""
    def closed(rate: int, credit: int = 500, jump: int = 0) -> list[dict]:
        """1.75 MB past the allowance, growing ``rate`` a second; ``credit`` a second
        earned, and ``jump`` more at 20 s (the download then takes what goes past)."""
        out = []
        for t in range(int(GATE_WINDOW)):
            allowance = 3_750_000 + credit * t + (jump if t >= 20 else 0)
            used = max(5_500_000 + rate * t, allowance + 100_000 if t > 20 else 0)
            out.append({"t": t, "used": used, "allowance": allowance, "done": used - 30_000,
                        "state": "waiting for relay credit"})
        return out

    piece = 64 * 1024
    assert gate_leaks(closed(0), piece) == []  # as measured: flat
    assert gate_leaks(closed(1000), piece) == []  # within the slack
    assert len(gate_leaks(closed(5000), piece)) == 2  # a trickle, as a no-op gate lets by
    assert len(gate_leaks(closed(4_000_000), piece)) == 2  # on unlimited
    # credit is taken only once it is more than the overshoot
    assert len(gate_leaks(closed(0, credit=20_000), piece)) == 0
    assert len(gate_leaks(closed(20_000, credit=20_000), piece)) == 2
    assert gate_leaks(closed(0, jump=3_000_000), piece) == []


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
    # the gate holds: what is downloaded stays at the allowance, measured while it is closed
    samples = watch_gate(a, tid, GATE_WINDOW)
    over = samples[0]["used"] - samples[0]["allowance"]
    print(f"gate closed {over} bytes over an allowance of {samples[0]['allowance']}; "
          "then (s, used, allowance, done):",
          [(s["t"], s["used"], s["allowance"], s["done"]) for s in samples])
    assert gate_leaks(samples, info["piece_length"]) == [], samples
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
    # a double count would be a jump at the ledger's next samples of the new relay: give it
    # two sampling intervals (there is no state to wait for: nothing is what must happen)
    time.sleep(2 * LEDGER_INTERVAL)
    after_relay = a.json("ratio")["relayed"]
    assert after_node <= after_relay < after_node + max(2 * MB, after_node // 2)
    assert a.json("relay", "status")["pid"] != relay_pid
