"""Operating a node through the CLI: list/status schemas, Ctrl-C and re-attach, a stalled
download, pause and resume, unshare and remove. On the real private Tor network.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time

import pytest

from .conftest import Node
from .test_node_lifecycle import row, settled, wait_until
from .test_liveness import look
from .test_share_get import digests

#: the documented schemas (man/obt.1): key -> type(s)
LIST_KEYS = {
    "id": str, "role": str, "name": str, "state": str, "size": int, "uri": str, "path": str,
    "error": (str, type(None)), "announce_error": (str, type(None)),
}
LIST_ENGINE_KEYS = {
    "progress": float, "done": int, "wanted": int, "rate_down": int, "rate_up": int,
    "peers": int, "payload_down": int, "payload_up": int,
}
STATES = {"seeding", "downloading", "waiting for peers", "stalled", "paused", "moving", "complete",
          "error"}
STATUS_KEYS = {
    "running": bool, "version": str, "pid": int, "uptime": (int, float), "home": str,
    "network": str, "tor": dict, "engine": dict, "onions": int, "torrents": int,
}


def make_share(root, mb: int):
    src = root / f"share-{secrets.token_hex(4)}"
    src.mkdir(parents=True)
    with open(src / "data.bin", "wb") as f:
        for _ in range(mb):
            f.write(secrets.token_bytes(1024 * 1024))
    return src


@pytest.fixture(scope="module")
def pair(tmp_path_factory, testnet):
    root = tmp_path_factory.mktemp("ops")
    seeder, leecher = Node(root / "seeder", testnet), Node(root / "leecher", testnet)
    leecher.configure(stall_timeout=8, announce_interval=10)
    seeder.configure(announce_interval=10)
    seeder.start()
    leecher.start()
    yield seeder, leecher, root
    seeder.stop()
    leecher.stop()


def test_list_and_status_json_follow_the_documented_schema(pair, tmp_path):
    seeder, _, _ = pair
    seeder.json("share", str(make_share(tmp_path, 1)))
    for item in seeder.json("list"):
        for key, kind in {**LIST_KEYS, **LIST_ENGINE_KEYS}.items():
            assert isinstance(item[key], kind), (key, item[key])
        assert item["state"] in STATES and item["role"] in ("share", "download")
        assert 0.0 <= item["progress"] <= 1.0
    status = seeder.json("node", "status")
    for key, kind in STATUS_KEYS.items():
        assert isinstance(status[key], kind), (key, status[key])
    assert status["running"] is True and status["tor"]["bootstrap"]["progress"] == 100
    assert set(status["tor"]) >= {"pid", "bootstrap", "socks", "restarts"}
    assert isinstance(status["engine"]["listen_port"], int) and status["onions"] >= 2
    peers = seeder.json("list", "--peers", seeder.json("list")[0]["id"][:8])
    assert set(peers) == {"id", "paths", "engine_peers", "growth"}
    assert peers["growth"] is None  # a share's paths do not grow; a download's do
    for path in peers["paths"]:
        assert set(path) >= {"direction", "onion", "endpoint", "down", "up", "connections",
                             "active", "failures", "last_error", "lane"}


def test_ctrl_c_leaves_the_download_running_and_get_reattaches(pair, tmp_path):
    seeder, leecher, _ = pair
    src = make_share(tmp_path, 24)
    info = seeder.json("share", str(src))
    out = tmp_path / "out"
    proc = leecher.popen("get", info["uri"], "-o", str(out))
    # asked through the control socket (milliseconds), not `obt list` (a process start each):
    # the signal must come while the download runs
    wait_until(lambda: (look(leecher, info["infohash"]) or {}).get("done", 0) > 0, 120,
               "the first payload byte", step=0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "goes on in the node" in stderr
    again = leecher.run("get", info["uri"], "-o", str(out), "--json", timeout=240)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["state"] == "complete"
    assert digests(out / src.name) == digests(src)


def test_a_stalled_download_is_reported_and_recovers(pair, tmp_path):
    seeder, leecher, _ = pair
    src = make_share(tmp_path, 32)
    info = seeder.json("share", str(src))
    tid = info["infohash"]
    out = tmp_path / "out"
    leecher.json("get", info["uri"], "-o", str(out), "--no-wait")
    wait_until(lambda: (row(leecher, tid) or {}).get("done", 0) > 0, 120, "payload")
    tor_pid = seeder.json("node", "status")["tor"]["pid"]
    os.kill(tor_pid, signal.SIGSTOP)  # circuits stay open, nothing moves: a real stall
    try:
        cli = leecher.run("get", info["uri"], "-o", str(out), timeout=120)
        assert cli.returncode == 4, cli.stderr
        assert "no progress for 8 s" in cli.stderr and "goes on in the node" in cli.stderr
        wait_until(lambda: (row(leecher, tid) or {}).get("state") == "stalled", 60, "stalled")
    finally:
        os.kill(tor_pid, signal.SIGCONT)
    wait_until(lambda: (row(leecher, tid) or {}).get("state") == "complete", 240, "completion",
               show=lambda: row(leecher, tid))
    assert digests(out / src.name) == digests(src)


#: the pausing leecher's download cap: a 4 MiB share takes some 16 s, time to pause it
PAUSE_RATE = 256 * 1024


def still(node: Node, tid: str, least: int = 1, seconds: float = 4.0) -> dict:
    """The paused download's row once it shows no peer and the same ``least`` or more bytes
    twice; then it must keep them, with no peer, for ``seconds``."""
    def idle():
        r = row(node, tid)
        if r and r["state"] == "paused" and r.get("peers") == 0 and r["done"] >= least:
            return r["done"]
        return None

    done = wait_until(lambda: settled(idle), 60, "a paused download at rest",
                      show=lambda: row(node, tid))[0]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = row(node, tid)
        assert (now["state"], now["done"], now["peers"]) == ("paused", done, 0), now
        time.sleep(0.5)
    return done


def test_a_paused_download_stays_paused_across_a_restart_and_resumes(pair, tmp_path):
    seeder, _, root = pair
    slow = Node(root / f"slow-{secrets.token_hex(3)}", seeder.network)
    slow.configure(download_rate=PAUSE_RATE, announce_interval=10, stall_timeout=8)
    slow.start()
    try:
        src = make_share(tmp_path, 4)
        info = seeder.json("share", str(src))
        tid = info["infohash"]
        refused = seeder.run("pause", tid[:10])
        assert refused.returncode == 2 and "is a share" in refused.stderr
        out = tmp_path / "out"
        slow.json("get", info["uri"], "-o", str(out), "--no-wait")
        wait_until(lambda: (row(slow, tid) or {}).get("done", 0) > 0, 120, "payload")
        refused = slow.run("resume", tid[:10])
        assert refused.returncode == 2 and "not paused" in refused.stderr
        assert slow.json("pause", tid[:10]) == {"id": tid, "name": src.name, "state": "paused"}
        before = still(slow, tid)
        assert before < 4 * 1024 * 1024
        slow.stop()
        slow.start()
        still(slow, tid, least=before)  # restored paused: it does not move, nor is it stalled
        assert slow.json("resume", tid[:10])["state"] == "downloading"
        wait_until(lambda: (row(slow, tid) or {}).get("state") == "complete", 120,
                   "completion", show=lambda: row(slow, tid))
        assert digests(out / src.name) == digests(src)
        refused = slow.run("pause", tid[:10])
        assert refused.returncode == 2 and "is complete" in refused.stderr
    finally:
        slow.stop()


def test_unshare_withdraws_the_onions(pair, tmp_path):
    seeder, leecher, _ = pair
    info = seeder.json("share", str(make_share(tmp_path, 1)))
    assert leecher.fetch_torrent(info["uri"])[0] == 200
    done = seeder.json("unshare", info["infohash"][:10])
    assert done["id"] == info["infohash"]
    assert info["infohash"] not in {r["id"] for r in seeder.json("list")}
    proc = leecher.run("get", info["uri"], "-o", str(tmp_path / "o"), "--timeout", "15")
    assert proc.returncode == 3, proc.stderr  # the onion answers nothing any more


def test_remove_with_delete_data_deletes_only_downloaded_files(pair, tmp_path):
    seeder, leecher, _ = pair
    src = make_share(tmp_path, 2)
    info = seeder.json("share", str(src))
    out = tmp_path / "out"
    assert leecher.run("get", info["uri"], "-o", str(out)).returncode == 0
    refused = seeder.run("remove", info["infohash"], "--delete-data")
    assert refused.returncode == 2 and "never deletes a share's files" in refused.stderr
    leecher.json("remove", info["infohash"], "--delete-data")
    wait_until(lambda: not (out / src.name / "data.bin").exists(), 20, "deletion")
    assert (src / "data.bin").exists()
    assert info["infohash"] not in {r["id"] for r in leecher.json("list")}
