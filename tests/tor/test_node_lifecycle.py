"""Issue 2 of the node's life: restarts, kill -9, resume, a seeder that goes away, tor dying,
a three-node swarm, a full disk. One story on the real private Tor network, told in order:
each test leaves the nodes as the next one expects them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time

import pytest

from .conftest import Node
from .test_share_get import digests

#: one story: each step relies on the ones before (see conftest.py)
pytestmark = pytest.mark.incremental

SIZE_MB = 40
#: seconds a client may wait for a restarted (or tor-restarted) node's URI to answer
RESTART_REACH = 300
#: BitTorrent framing on top of payload: 13 bytes per 16 KiB block, plus handshakes
#: and bitfields; 1 % + 64 KiB is far above it and far below one more piece of slack
FRAMING = lambda n: n // 100 + 64 * 1024  # noqa: E731


def wait_until(fn, timeout: float, what: str, step: float = 0.25, show=None):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {show and show()}"
        time.sleep(step)


def settled(read, pause: float = 1.0) -> tuple | None:
    """``(read(),)`` if two reads ``pause`` apart agree and are not None (else None): for a
    value that grows while something works on it, such as a check of what is on disk."""
    before = read()
    time.sleep(pause)
    after = read()
    return (after,) if after is not None and after == before else None


def row(node: Node, torrent_id: str) -> dict | None:
    proc = node.run("list", "--json")
    if proc.returncode != 0:
        return None
    return next((r for r in json.loads(proc.stdout) if r["id"] == torrent_id), None)


def pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture(scope="module")
def story(tmp_path_factory, testnet):
    root = tmp_path_factory.mktemp("story")
    nodes = {name: Node(root / name, testnet) for name in ("seeder", "leecher", "third")}
    for node in nodes.values():
        node.configure(announce_interval=10)  # re-announce often: swarms re-form quickly
    src = root / "src" / "movie"
    src.mkdir(parents=True)
    with open(src / "movie.bin", "wb") as f:
        for _ in range(SIZE_MB):
            f.write(secrets.token_bytes(1024 * 1024))
    (src / "subtitles.srt").write_text("1\n00:00:01,000 --> 00:00:02,000\nBonjour\n")
    state = {"root": root, "src": src, "nodes": nodes}
    yield state
    for node in nodes.values():
        node.stop()


def test_interrupted_download_resumes_after_kill_9_and_seeder_restart(story):
    seeder, leecher = story["nodes"]["seeder"], story["nodes"]["leecher"]
    info = seeder.json("share", str(story["src"]))
    story["info"] = info
    tid, size = info["infohash"], info["size"]
    out = story["root"] / "out"
    started = leecher.json("get", info["uri"], "-o", str(out), "--no-wait")
    assert started["id"] == tid
    wait_until(lambda: (row(leecher, tid) or {}).get("progress", 0) >= 0.3, 120, "30 % done")

    # the seeder goes away mid-transfer: the download waits for peers
    seeder.run("node", "stop", timeout=60)
    waiting = wait_until(
        lambda: (r := row(leecher, tid)) and r["state"] == "waiting for peers" and r,
        60, "waiting for peers", show=lambda: (row(leecher, tid), leecher.run(
            "list", "--peers", tid, "--json").stdout))
    assert waiting["done"] < size

    # kill -9 the downloading node; start it again: nothing verified is fetched again
    pid = leecher.json("node", "status")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: pid_gone(pid), 20, "the killed node to go")
    leecher.start()
    r = wait_until(lambda: row(leecher, tid), 30, "the download to be restored")
    assert r["state"] in ("waiting for peers", "stalled", "downloading")
    # the restored torrent checks what is on disk; with no peer, nothing else adds to it
    (kept,) = wait_until(lambda: settled(lambda: (row(leecher, tid) or {}).get("done")), 60,
                         "the check of what survived on disk")
    assert kept >= 0.25 * size, f"only {kept} of {size} bytes survived the kill"
    assert kept < size

    # the seeder returns on the same URI; the download completes. The restarted leecher's
    # tor never reached the seeder, and may have asked every HSDir while only the seeder's
    # old descriptor was there: the node has it forget that (NEWNYM) after 30 s of failing,
    # then after 60 s, 120 s (tor/reach.py), so this is bounded by the node, not tor's 15 min
    seeder.start()
    back = time.monotonic()
    assert next(r for r in seeder.json("list") if r["id"] == tid)["uri"] == info["uri"]
    wait_until(lambda: (row(leecher, tid) or {}).get("state") == "complete", 300, "completion",
               show=lambda: (row(leecher, tid), leecher.run("list", "--peers", tid).stdout,
                             seeder.run("list", "--peers", tid).stdout,
                             [r for r in seeder.json("list") if r["id"] == tid],
                             leecher.log(), seeder.log(),
                             "leecher's tor:", leecher.tor_log(30),
                             "seeder's tor:", seeder.tor_log(30)))
    print(f"\nthe download completed {time.monotonic() - back:.1f} s after the seeder came back")
    assert digests(out / "movie") == digests(story["src"])
    fetched = sum(p["down"] for p in leecher.json("list", "--peers", tid)["paths"]
                  if p["direction"] == "out")
    paths = sum(1 for p in leecher.json("list", "--peers", tid)["paths"]
                if p["direction"] == "out" and p["down"] > 0)
    piece = info["piece_length"]
    assert fetched <= (size - kept) + piece * paths + FRAMING(size), (fetched, size - kept)


def test_node_restart_and_kill_9_keep_every_uri_answering(story):
    seeder, third = story["nodes"]["seeder"], story["nodes"]["third"]
    before = {r["id"]: r["uri"] for r in seeder.json("list")}
    seeder.stop()
    seeder.start()
    after = {r["id"]: r["uri"] for r in seeder.json("list")}
    assert after == before
    third.start()
    # a client may hold, or an HSDir still serve, a descriptor of the tor before, whose
    # introduction points are gone (SOCKS 0xF2) until it is replaced: bounded at RESTART_REACH
    for uri in after.values():
        status, body = third.fetch_torrent(uri, timeout=RESTART_REACH)
        assert status == 200 and body.startswith(b"d")
    # and after kill -9: the same URIs, answering again
    pid = seeder.json("node", "status")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: pid_gone(pid), 20, "the killed node to go")
    seeder.start()
    assert {r["id"]: r["uri"] for r in seeder.json("list")} == before
    for uri in before.values():  # third holds descriptors whose intro points died with -9
        assert third.fetch_torrent(uri, timeout=RESTART_REACH)[0] == 200


def test_tor_death_is_survived_and_three_node_swarm_uses_both_seeders(story):
    seeder, leecher, third = (story["nodes"][n] for n in ("seeder", "leecher", "third"))
    tid = story["info"]["infohash"]
    status = seeder.json("node", "status")
    os.kill(status["tor"]["pid"], signal.SIGKILL)
    wait_until(lambda: seeder.json("node", "status")["tor"]["restarts"] >= 1, 90, "tor restart")
    assert seeder.json("node", "status")["tor"]["bootstrap"]["progress"] == 100
    # republished after the restart (a client holding the old descriptor may take a while:
    # its cached introduction points died with the old tor). Once (full run 3 of session 9)
    # every 30 s attempt for 300 s got no SOCKS answer at all: on failure, say what the
    # seeder's node knew of its onions' publication
    try:
        assert third.fetch_torrent(story["info"]["uri"], timeout=RESTART_REACH)[0] == 200
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nthe seeder: {seeder.json('node', 'status')['publishing']}"
                             f"\n{seeder.log()[-1500:]}\nthe seeder's tor:\n{seeder.tor_log()}"
                             f"\nthe third node's tor:\n{third.tor_log()}") from None

    proc = third.run("get", story["info"]["uri"], "-o", str(story["root"] / "probe"),
                     "--no-wait", "--json", "--timeout", "90")
    assert proc.returncode == 0, proc.stderr
    wait_until(lambda: (row(third, tid) or {}).get("state") == "complete", 240, "third node done")
    assert digests(story["root"] / "probe" / "movie") == digests(story["src"])
    paths = third.json("list", "--peers", tid)["paths"]
    seeder_onions = {o.removesuffix(".onion") for o in story["info"]["onions"]}
    from_seeder = sum(p["down"] for p in paths if p["direction"] == "out"
                      and p["onion"] in seeder_onions)
    from_leecher = sum(p["down"] for p in paths if p["direction"] == "out"
                       and p["onion"] not in seeder_onions)
    assert from_seeder > 0 and from_leecher > 0, paths


def test_full_disk_is_a_clear_error_and_the_node_stays_up(story, tmp_path):
    third = story["nodes"]["third"]
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)]).returncode:
        pytest.skip("needs root to mount a 4 MB tmpfs as the full disk")
    try:
        seeder = story["nodes"]["seeder"]
        src = tmp_path / "big-share"
        src.mkdir()
        (src / "big.bin").write_bytes(secrets.token_bytes(12 * 1024 * 1024))
        uri = seeder.json("share", str(src))["uri"]
        proc = third.run("get", uri, "-o", str(small), "--timeout", "90")
        assert proc.returncode == 1, proc.stderr
        assert "No space left on device" in proc.stderr
        assert third.json("node", "status")["running"] is True
        assert [p.name for p in small.iterdir()] == [p.name for p in small.iterdir()
                                                    if p.name.startswith(".obt-incomplete-")]
        assert not (small / "big-share").exists()
    finally:
        third.stop()  # releases the files on the tmpfs
        subprocess.run(["umount", "-l", str(small)])


def test_unwritable_target_is_refused(story, tmp_path):
    leecher = story["nodes"]["leecher"]
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    other = Node(story["root"] / "fresh", leecher.network)
    other.configure()
    try:
        proc = other.run("get", story["info"]["uri"], "-o", str(target), "--timeout", "90")
        assert proc.returncode == 2, proc.stderr
        assert "a-file" in proc.stderr
        assert target.read_text() == "not a folder"
    finally:
        other.stop()
