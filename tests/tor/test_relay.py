"""Issue 4 of the plan: every node a middle relay; the ratio is earned by relaying.

One story on the private network: node A runs a relay and has a tiny free base; a seeder
S; node C routes all its circuits through A's relay (EntryNodes), so what C downloads is
relayed by A for someone else.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
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
#: at times, which :func:`gate_leaks` then holds to the same bound)
GATE_WINDOW = 40.0
#: what the node may download past its allowance, at any time: the credit libtorrent's
#: limiter holds unspent at the rate cap's floor (``relay.core.LIMITER_BANK`` seconds of
#: ``RATE_FLOOR``, 104 KiB) plus credit it still holds from the higher caps of the seconds
#: before (the model in tests/unit/test_relay_gate.py finds up to 82 KB for this
#: allowance). Measured before the fix: 1.5-2.5 MB at the close; once 3.2 MB on reopening
OVERSHOOT = 256 * 1024


def ratio_sample(a: Node, tid: str, began: float) -> dict:
    """The download's row, then A's ratio: the allowance only grows, so ``done`` is held to
    an allowance no older than itself (``used`` and ``allowance`` are read together)."""
    r = row(a, tid) or {}
    ratio = a.json("ratio")
    return {"t": round(time.monotonic() - began, 1), "used": ratio["used"],
            "allowance": ratio["allowance"], "done": r.get("done", 0),
            "state": r.get("state")}


def watch_gate(a: Node, tid: str, seconds: float) -> list[dict]:
    """Sample A's ratio and the download once a second for ``seconds``."""
    samples = []
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        samples.append(ratio_sample(a, tid, began))
        time.sleep(1)  # the sampling interval of a measurement over a fixed window
    return samples


class Watcher(threading.Thread):
    """Samples A's ratio and the download once a second until halted."""

    def __init__(self, a: Node, tid: str) -> None:
        super().__init__(daemon=True)
        self.a, self.tid, self.samples = a, tid, []
        self.halt = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        while not self.halt.wait(1):  # the sampling interval, as in watch_gate
            self.samples.append(ratio_sample(self.a, self.tid, began))


def gate_leaks(samples: list[dict]) -> list[str]:
    """The samples that show the download past the allowance by more than
    :data:`OVERSHOOT` ([] for none).

    The allowance grows as the relay earns credit, and the gate reopens; at every moment
    the node's own count (``used``) and libtorrent's verified bytes (``done``, for a fresh
    download a part of ``used``: a check of the node's count) must stay within it.
    """
    wrong = []
    for s in samples:
        for key in ("used", "done"):
            if s[key] - s["allowance"] > OVERSHOOT:
                wrong.append(f"at {s['t']:g} s {key} {s[key]} is {s[key] - s['allowance']} "
                             f"bytes past the allowance {s['allowance']}")
    return wrong


def test_the_gate_check_finds_a_download_past_the_allowance():
    """:func:`gate_leaks` on the shapes measured here, before and after the fix."""
    def closed(over: int, rate: int = 0, credit: int = 500, jump: int = 0) -> list[dict]:
        """``over`` bytes past the allowance at the close, growing ``rate`` a second;
        ``credit`` a second earned, and ``jump`` more at 20 s (the download then takes
        what goes past, and ``over`` more)."""
        out = []
        for t in range(int(GATE_WINDOW)):
            allowance = 3_750_000 + credit * t + (jump if t >= 20 else 0)
            used = max(3_750_000 + over + rate * t, allowance + over if t >= 20 else 0)
            out.append({"t": t, "used": used, "allowance": allowance, "done": used - 30_000,
                        "state": "waiting for relay credit"})
        return out

    assert gate_leaks(closed(40_000)) == []  # as measured after the fix
    assert gate_leaks(closed(OVERSHOOT - 1000, rate=20)) == []
    assert gate_leaks(closed(40_000, jump=3_000_000)) == []  # reopened, closed again
    assert gate_leaks(closed(1_750_000))  # as measured before: 1.5-2.5 MB past
    assert gate_leaks(closed(40_000, rate=16_384))  # a trickle past the closed gate
    # reopened by 195 KB of credit and 3.2 MB came through (before the fix)
    assert gate_leaks(closed(3_200_000 - 195_000, jump=195_000))


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
        180, "the gate", show=lambda: (row(a, tid), a.json("ratio")))
    ratio = a.json("ratio")
    assert ratio["exhausted"] and ratio["used"] >= ratio["allowance"]
    assert gated["done"] < info["size"]
    # the gate holds: what is downloaded stays at the allowance, measured while it is closed
    samples = watch_gate(a, tid, GATE_WINDOW)
    over = samples[0]["used"] - samples[0]["allowance"]
    print(f"gate closed {over} bytes over an allowance of {samples[0]['allowance']}; "
          "then (s, used, allowance, done):",
          [(s["t"], s["used"], s["allowance"], s["done"]) for s in samples])
    assert gate_leaks(samples) == [], samples
    # A's own download did not pass through A's relay (its client excludes it)
    own = a.json("ratio")["relayed"] - relayed_before
    assert own < gated["done"] / 2, (own, gated["done"])

    # C sends all its traffic through A's relay: A relays C's download for C
    c.configure(tor_options=[["EntryNodes", f"${net['fingerprint']}"], ["StrictNodes", "1"]],
                announce_interval=10)
    c.start()
    before = a.json("ratio")["relayed"]
    # A's gate opens as A earns the credit: held to the allowance all along
    watcher = Watcher(a, tid)
    watcher.start()
    try:
        got = c.json("get", info["uri"], "-o", str(net["root"] / "c-out"), timeout=300)
        assert got["state"] == "complete"
        wait_until(lambda: a.json("ratio")["relayed"] - before >= info["size"], 30,
                   "A's ledger to count what it relayed", show=lambda: a.json("ratio"))

        # with the credit earned, A's download resumes by itself and completes
        wait_until(lambda: (row(a, tid) or {}).get("state") == "complete", 240,
                   "A completes", show=lambda: (row(a, tid), a.json("ratio")))
    finally:
        watcher.halt.set()
        watcher.join()
    print("while A earned its credit (s, used, allowance, done):",
          [(s["t"], s["used"], s["allowance"], s["done"]) for s in watcher.samples])
    # at least 5 samples (each is two CLI calls, about 1-2 s): enough to see the gate reopen;
    # a fast run earned the credit in 9 (seen once), so 10 failed a test that had checked
    assert len(watcher.samples) >= 5 and gate_leaks(watcher.samples) == [], watcher.samples
    assert digests(net["root"] / "a-out" / "payload") == digests(net["src"])
    assert digests(net["root"] / "c-out" / "payload") == digests(net["src"])
    # what the UI's rate chart draws: a point every 10 s, and A's relaying shows in them
    history = a.json("relay", "status")["history"]
    assert history and max(r for _, r in history) > 0, history


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
