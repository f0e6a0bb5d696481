"""Live audio on the private network (issue 17): a broadcaster and four listeners with
fan-out 2, every byte over onion services, driven through the CLI. One listener that relays
is killed with SIGKILL; its listeners join again and go on, and the gap each heard is
reported. Every listener's file decodes with ffmpeg and holds the broadcast's tones in order.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal

import pytest

from ..tones import FREQUENCIES, in_order, tones_heard, write_tones
from .conftest import Node
from .test_node_lifecycle import pid_gone, wait_until

#: seconds each tone lasts: the broadcast is 24 of them (60 s), long enough for four
#: listeners to join through Tor, one of them to die and its listeners to join again
TONE = 2.5


@pytest.fixture(scope="module")
def listeners(tmp_path_factory, testnet):
    """Three fresh nodes (started together) that relay, and the session's node_b, which
    only listens: whichever relay ends up at depth 1 with listeners under it can be killed
    without touching a node other tests use."""
    root = tmp_path_factory.mktemp("cast")
    fresh = [Node(root / f"listener{i}", testnet) for i in range(3)]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda n: n.start(), fresh))
    yield fresh
    for node in fresh:
        node.stop()


def casts(node: Node, role: str) -> list[dict]:
    proc = node.run("casts", "--json")
    if proc.returncode != 0:  # a killed node answers nothing
        return []
    import json

    return [c for c in json.loads(proc.stdout) if c["role"] == role]


def test_four_listeners_relay_a_live_broadcast_and_survive_a_relay_killed(
        node_a, node_b, listeners, tmp_path):
    wav = write_tones(tmp_path / "tones.wav", TONE)
    cast = node_a.json("cast", str(wav), "--fanout", "2", "--bitrate", "48", "--public",
                       "--description", "24 tones", timeout=240)
    uri = cast["uri"]
    assert cast["state"] == "live" and uri.startswith("http://") and "/cast/" in uri
    served = []
    everyone = [*listeners, node_b]
    try:
        # listed in node A's public catalogue, read through Tor by node B
        public = node_a.json("node", "id")["public_uri"]
        items = node_b.json("get", public, timeout=240)["items"]
        [item] = [i for i in items if i.get("kind") == "cast"]
        assert (item["uri"], item["name"], item["description"]) == (uri, "tones", "24 tones")
        picked = node_b.run("get", public, "--pick", "tones", timeout=240)
        assert picked.returncode == 2 and "obt listen" in picked.stderr, picked.stderr

        outs = {}
        for i, node in enumerate(everyone):
            outs[node.home] = tmp_path / f"heard{i}.ogg"
            fanout = "0" if node is node_b else "2"
            node.json("listen", uri, "--fanout", fanout, "-o", str(outs[node.home]))

        def tree_of_depth_two():
            [b] = casts(node_a, "broadcast")
            served.append(b["serving"])
            heard = [casts(n, "listen") for n in everyone]
            return (b["listeners"] == 4 and b["depth"] == 2
                    and all(h and h[0]["pages"] > 0 for h in heard))

        wait_until(tree_of_depth_two, 120, "four listeners in a tree of depth 2",
                   step=1.0, show=lambda: (casts(node_a, "broadcast"),
                                           [casts(n, "listen") for n in everyone]))
        rows = {n.home: casts(n, "listen")[0] for n in everyone}
        assert sorted(r["depth"] for r in rows.values()) == [1, 1, 2, 2]
        assert rows[node_b.home]["serving"] == 0  # --fanout 0: it relays to no one
        # a relay at depth 1 with listeners under it, and its node, killed with SIGKILL
        [victim] = [n for n in listeners if rows[n.home]["depth"] == 1
                    and rows[n.home]["serving"] > 0][:1]
        dead = rows[victim.home]["onion"]
        orphans = [n for n in everyone if rows[n.home]["parent"] == dead]
        assert orphans and all(rows[n.home]["depth"] == 2 for n in orphans), rows
        pid = victim.json("node", "status")["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: pid_gone(pid), 20, "the killed node to go")

        def rejoined():
            now = [casts(n, "listen")[0] for n in orphans]
            return all(r["gaps"] and r["state"] == "listening" for r in now) and now

        after = wait_until(rejoined, 90, "the dead relay's listeners to join again",
                           step=1.0, show=lambda: [casts(n, "listen") for n in orphans])
        for row in after:
            gap = row["gaps"][-1]
            print(f"listener at depth {row['depth']}: re-joined after {gap['stall_s']} s "
                  f"without a page, {gap['pages_lost']} page(s) lost")
            assert row["parent"] != dead and gap["to"] != dead
            assert gap["stall_s"] < 60
        alive = [n for n in everyone if n is not victim]
        wait_until(lambda: all(casts(n, "listen")[0]["state"] == "ended" for n in alive),
                   24 * TONE + 60, "the broadcast to end at every listener", step=2.0,
                   show=lambda: [casts(n, "listen") for n in alive])
        wait_until(lambda: casts(node_a, "broadcast")[0]["state"] == "ended", 30,
                   "the broadcast to end")
        served.append(casts(node_a, "broadcast")[0]["serving"])
        assert max(served) <= 2  # the broadcaster never served more than its fan-out
        for node in alive:
            heard = tones_heard(outs[node.home])
            assert in_order(heard), heard
            assert heard and heard[-1] == FREQUENCIES[-1], heard
            assert len(heard) >= 8, heard  # it heard a good part of the broadcast
            assert casts(node, "listen")[0]["refused_servers"] == 0
    finally:
        for node in everyone:
            node.run("listen", "--stop")
        node_a.run("cast", "--stop")


def test_stdin_is_broadcast_until_it_ends(node_a, tmp_path):
    """``obt cast -``: the command feeds stdin to the node and returns when stdin ends,
    which ends the broadcast."""
    import subprocess
    import sys

    wav = write_tones(tmp_path / "short.wav", 0.5, FREQUENCIES[:6])  # 3 s
    proc = subprocess.run([sys.executable, "-m", "onionshare_bt", "cast", "-", "--json"],
                          env=node_a.env(), input=wav.read_bytes(), capture_output=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    import json

    info = json.loads(proc.stdout)
    assert "/cast/" in info["uri"] and b"it ends when stdin does" in proc.stderr
    try:
        ended = wait_until(lambda: [c for c in casts(node_a, "broadcast")
                                    if c["id"] == info["id"] and c["state"] == "ended"],
                           30, "the broadcast to end with stdin")
        assert ended[0]["pages"] > 10  # 3 s of 200 ms pages, and the headers
        assert not list(node_a.home.glob("cast-*.fifo"))  # the pipe is gone
    finally:
        node_a.run("cast", "--stop", info["id"])
