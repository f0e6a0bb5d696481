"""Issue 2.2, load: a node holds up when many peers, many shares or many announces come.

- One seeder serves 8 downloaders at once, each its own node (started one after another,
  each stopped as soon as its copy is complete): every copy is byte-identical, and the
  seeder's ``obt list`` answers throughout (its slowest answer is measured and bounded).
- A node holding 100 shares (two onions each) restarts and republishes all of them: ``obt
  list`` shows the same 100 URIs, and a sample of them answers through another node's tor.
- The tracker takes a burst of 2,000 announces on its loopback listener without stalling
  the node's event loop (``loop_lag_recent_ms`` in ``obt node status --json``).

Figures are printed (``pytest -s``) and kept in the assertion messages. Every wait polls a
condition under a deadline.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import psutil
import pytest

from onionshare_bt import control
from onionshare_bt.engine.metainfo import parse
from onionshare_bt.errors import ObtError
from onionshare_bt.onion import onion_from_pubkey

from .conftest import Node
from .test_share_get import digests

pytestmark = [pytest.mark.tor, pytest.mark.timeout(900)]

DOWNLOADERS = 8
SIZE_MB = 16
#: the seeder's control API must answer ``list`` (or ``status``) within this, however busy
LIST_ANSWER_WITHIN = 2.0
#: ``obt list`` as a command: a Python process starting on a busy 2-core machine
LIST_COMMAND_WITHIN = 15.0
SHARES = 100
SAMPLE = 8
#: seconds a restarted node's tor may take to publish its 200 onions again: 134 s and 330 s
#: alone, 16 at a time (tor/publisher.py); all at once, 230 and 315 s (tor left its first
#: burst of uploads unanswered; they count as ended after 180 s, tor/uploads.py). A
#: time-period turn during it (every 16 minutes on the Tor tier's network) adds a burst of
#: its own; the sampled fetches must come before the next turn (see the bench result). One
#: full run (session 11) had 187 of 200 at 310-403 s, 12 uploads unanswered until tor's
#: give-up: a wait for a condition, so a long bound costs only the slow runs
REPUBLISH_TIMEOUT = 600
#: `obt share` time-outs (exit 4) tolerated among the hundred, each retried once
MAX_SHARE_RETRIES = 3
#: seconds each sampled URI may take to answer after that (measured alone: 1.4-1.5 s)
FETCH_TIMEOUT = 300
ANNOUNCES = 2000
ANNOUNCE_CONCURRENCY = 50
#: a stall is the loop blocked for a second or more; measured: 52-87 ms with the machine to
#: itself, 353 ms right after the hundred shares' node and its tor had gone (full run)
LOOP_LAG_BOUND_MS = 1000.0


def ask(node: Node, op: str, timeout: float = 20, **args):
    return asyncio.run(control.call(node.home / "node.sock", op, args, timeout=timeout))


def make_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = min(left, 1 << 20)
            f.write(secrets.token_bytes(chunk))
            left -= chunk
    return path


def spread(times: list[float]) -> str:
    if not times:
        return "no samples"
    return (f"n={len(times)} median={statistics.median(times) * 1000:.0f} ms "
            f"max={max(times) * 1000:.0f} ms")


class Pinger(threading.Thread):
    """Asks a node's control socket ``op`` every ``every`` s; keeps each answer's time."""

    def __init__(self, node: Node, op: str, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.node, self.op, self.every = node, op, every
        self.times: list[float] = []
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            started = time.monotonic()
            try:
                ask(self.node, self.op, timeout=30)
            except ObtError as exc:
                self.errors.append(exc.message)
            self.times.append(time.monotonic() - started)

    def halt(self) -> None:
        self._halt.set()
        self.join(timeout=60)


@pytest.fixture(scope="module")
def seeder(tmp_path_factory, testnet):
    node = Node(tmp_path_factory.mktemp("load") / "seeder", testnet)
    node.configure(announce_interval=10)
    node.start()
    yield node
    node.stop()


def test_one_seeder_serves_eight_downloaders_at_once(seeder, tmp_path, testnet):
    src = make_file(tmp_path / "src" / "eight.bin", SIZE_MB << 20)
    info = seeder.json("share", str(src))
    tid = info["infohash"]
    nodes = [Node(tmp_path / f"dl{i}", testnet) for i in range(DOWNLOADERS)]
    figures: dict = {"node_start_s": [], "complete_s": {}, "list_command_s": []}
    pinger = Pinger(seeder, "list")
    stoppers = ThreadPoolExecutor(4)
    try:
        for node in nodes:  # one after another: a tor's bootstrap is CPU-heavy
            started = time.monotonic()
            node.start()
            figures["node_start_s"].append(round(time.monotonic() - started, 1))
        figures["seeder_before"] = seeder.json("node", "status").get("resources")
        pinger.start()
        began = time.monotonic()
        with ThreadPoolExecutor(DOWNLOADERS) as pool:  # all eight at once
            gets = list(pool.map(
                lambda i: nodes[i].run("get", info["uri"], "-o", str(tmp_path / f"out{i}"),
                                       "--no-wait", "--json", "--timeout", "180"),
                range(DOWNLOADERS)))
        for proc in gets:
            assert proc.returncode == 0, proc.stderr
        pending = dict(enumerate(nodes))
        stopping = []
        deadline = time.monotonic() + 600
        last_cli = 0.0
        while pending:
            assert time.monotonic() < deadline, f"not every copy completed: {figures}"
            for i, node in list(pending.items()):
                row = ask(node, "torrent", id=tid)
                if row["state"] == "error":
                    pytest.fail(f"downloader {i}: {row['error']}")
                if row["state"] == "complete":
                    figures["complete_s"][i] = round(time.monotonic() - began, 1)
                    assert digests(tmp_path / f"out{i}") == digests(src.parent), \
                        f"downloader {i}'s copy differs"
                    stopping.append(stoppers.submit(node.stop))  # its tor leaves the machine
                    del pending[i]
            if time.monotonic() - last_cli >= 2.0:  # the command a user types, now and then
                last_cli = time.monotonic()
                proc = seeder.run("list", "--json", timeout=60)
                figures["list_command_s"].append(round(time.monotonic() - last_cli, 2))
                assert proc.returncode == 0, proc.stderr
                assert any(r["id"] == tid for r in json.loads(proc.stdout))
            time.sleep(0.5)
        for future in stopping:
            future.result(timeout=120)
    finally:
        pinger.halt()
        stoppers.shutdown(wait=True)
        for node in nodes:
            node.stop()
    figures["seeder_after"] = seeder.json("node", "status").get("resources")
    figures["list_answers"] = spread(pinger.times)
    print(f"load, {DOWNLOADERS} downloaders: {figures}")
    assert not pinger.errors, f"the seeder failed to answer: {pinger.errors[:5]}"
    assert pinger.times and max(pinger.times) < LIST_ANSWER_WITHIN, figures
    assert max(figures["list_command_s"]) < LIST_COMMAND_WITHIN, figures
    seeder.json("unshare", tid)


def test_a_node_with_a_hundred_shares_restarts_and_republishes_them_all(
        seeder, tmp_path, testnet):
    node = Node(tmp_path / "hundred", testnet)
    node.start()
    figures: dict = {}
    try:
        files = [make_file(tmp_path / "h" / f"s{i:03}" / f"share-{i:03}.bin", 64 * 1024)
                 for i in range(SHARES)]
        started = time.monotonic()
        # two at a time, each waiting for its onions' first descriptor upload. With --no-wait
        # the node's tor gets a burst of new services and the node once took over 10 s to
        # answer obt's first call (exit 4), at two and at four at a time: an open finding
        retried: list[str] = []

        def share(path: Path) -> dict:
            # with 100-200 services, the private network's 7 relays run short of paths
            # (tor: "128 general-purpose client circuits pending", "Could not find a node
            # that matches the configured _HSLayer2Nodes set") and the node's tor once left
            # ADD_ONION unanswered for 30 s, once published no upload in 60 s: `obt share`
            # says so (exit 4, nothing kept). A user retries; so does this test, once per
            # share, and counts it
            proc = node.run("share", str(path), "--json")
            if proc.returncode != 0:
                assert proc.returncode == 4, proc.stderr
                assert ("was not published within" in proc.stderr
                        or "did not answer a control command" in proc.stderr), proc.stderr
                retried.append(path.name)
                proc = node.run("share", str(path), "--json")
                assert proc.returncode == 0, proc.stderr
            return json.loads(proc.stdout)

        with ThreadPoolExecutor(2) as pool:
            infos = list(pool.map(share, files))
        figures["share_all_s"] = round(time.monotonic() - started, 1)
        figures["shares_retried"] = retried
        assert len(retried) <= MAX_SHARE_RETRIES, figures
        uris = {i["infohash"]: i["uri"] for i in infos}
        assert len(uris) == SHARES
        assert all(len(i["onions"]) == 2 for i in infos)
        assert node.json("node", "status")["onions"] >= 2 * SHARES

        started = time.monotonic()
        node.stop()
        figures["stop_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        node.start()
        figures["start_s"] = round(time.monotonic() - started, 1)
        rows = node.json("list")
        assert {r["id"]: r["uri"] for r in rows} == uris
        assert {r["state"] for r in rows} == {"seeding"}, [r for r in rows
                                                          if r["state"] != "seeding"][:3]

        # the node says when its tor has uploaded every onion's descriptors again (each
        # upload stored or refused, none under way: tor/uploads.py); until then a client
        # may get an HSDir's pre-restart descriptor, whose introduction points are dead
        started = time.monotonic()
        deadline, status, seen = started + REPUBLISH_TIMEOUT, {}, 0.0
        figures["publishing"] = {}  # every 30 s: where the onions stand
        while time.monotonic() < deadline:
            status = node.json("node", "status")
            if time.monotonic() - seen >= 30:
                seen = time.monotonic()
                figures["publishing"][round(seen - started)] = {
                    **{k: v for k, v in status["publishing"].items() if v},
                    "behind": status["tor"]["uploads_behind"],
                    "renewed": status["tor"]["renewed_onions"]}
            if status["published"] == status["onions"]:
                break
            time.sleep(2)
        figures["republish_s"] = round(time.monotonic() - started, 1)
        assert status["published"] == status["onions"] == 2 * SHARES, (
            f"{status['onions'] - status['published']} of {status['onions']} onions not "
            f"published again {REPUBLISH_TIMEOUT} s after the restart: {figures}\n"
            f"{node.log()}")

        # through another node's tor: every sampled URI answers with its own .torrent, and
        # no attempt meets a stale descriptor (SOCKS 0xF2, introduction failed). When the
        # node counted an onion published at its first stored upload, fresh clients got
        # 0xF2 for ~100 s after it said so (3 runs alone: 98-103 s): with 200 services the
        # restarted tor's 2,800 uploads took that long, and HSDirs not yet reached served
        # the old descriptors
        started = time.monotonic()
        sample = random.Random(22).sample(sorted(uris.items()), SAMPLE)
        tries: dict[str, list[str]] = {uri: [] for _, uri in sample}
        took: dict[str, float] = {}

        def fetch(uri: str):
            began = time.monotonic()
            # retried as obt's own client retries (a NEWNYM once it failed for 30 s): a
            # client that looked up an onion while its descriptor was not stored yet is
            # told "not found" by its tor for 15 minutes otherwise (s17 full2: 0xF0 for 300 s)
            result = seeder.fetch_torrent(uri, timeout=FETCH_TIMEOUT, tries=tries[uri],
                                          purge=True)
            took[uri] = round(time.monotonic() - began, 1)
            return result

        with ThreadPoolExecutor(SAMPLE) as pool:  # as many clients would, at once
            fetched = list(pool.map(lambda item: fetch(item[1]), sample))
        for (tid, uri), (code, body) in zip(sample, fetched):
            assert code == 200 and parse(body).id == tid, (uri, code)
        stale = [t for attempts in tries.values() for t in attempts if "(SOCKS 0xF2)" in t]
        assert not stale, f"a descriptor from before the restart after 'published': {stale[:3]}"
        figures["sample_fetch_s"] = round(time.monotonic() - started, 1)
        figures["each_fetch_s"] = sorted(took.values())
        figures["failed_attempts"] = {uri[7:23]: len(t) for uri, t in tries.items()}
        figures["first_and_last_failure"] = [tries[uri][i] for uri in list(tries)[:2]
                                             for i in (0, -1) if tries[uri]]
        after = node.json("node", "status")
        figures["resources"] = after.get("resources")
        # onions whose descriptor reached no HSDir, published afresh (tor/rescue.py)
        figures["renewed_onions"] = after["tor"]["renewed_onions"]
    finally:
        node.stop()
    print(f"load, {SHARES} shares: {figures}")


def _tracker_port(node: Node, uri: str) -> int:
    """The share's tracker listener on loopback: the one of the node's listening ports that
    serves this share's .torrent (bridges and libtorrent answer no HTTP)."""
    status = node.json("node", "status")
    path = "/" + uri.split("/", 3)[3]
    ports = sorted({c.laddr.port for c in psutil.Process(status["pid"]).net_connections("tcp")
                    if c.status == psutil.CONN_LISTEN and c.laddr.ip == "127.0.0.1"}
                   - {status["engine"]["listen_port"]})

    async def probe() -> int | None:
        timeout = aiohttp.ClientTimeout(total=3)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for port in ports:
                try:
                    async with http.get(f"http://127.0.0.1:{port}{path}") as resp:
                        if resp.status == 200 and (await resp.read()).startswith(b"d"):
                            return port
                except (aiohttp.ClientError, TimeoutError):
                    continue
        return None

    port = asyncio.run(probe())
    assert port is not None, f"no listener of pid {status['pid']} serves {path[:16]}…"
    return port


async def _burst(port: int, uri: str, info_hash: bytes, count: int) -> dict:
    """``count`` announces, each from a new onion, ``ANNOUNCE_CONCURRENCY`` at a time."""
    base = f"http://127.0.0.1:{port}/" + uri.split("/", 3)[3] + "/announce"
    quoted = "".join(f"%{b:02x}" for b in info_hash)
    statuses: dict[int, int] = {}
    gate = asyncio.Semaphore(ANNOUNCE_CONCURRENCY)

    async def one(http):
        onion = onion_from_pubkey(secrets.token_bytes(32))
        peer_id = "".join(f"%{b:02x}" for b in secrets.token_bytes(20))
        query = (f"info_hash={quoted}&peer_id={peer_id}&ip={onion}.onion&port=6881"
                 f"&uploaded=0&downloaded=0&left={secrets.randbelow(1 << 20)}&event=started")
        async with gate, http.get(f"{base}?{query}") as resp:
            body = await resp.read()
            ok = resp.status == 200 and body.startswith(b"d") and b"failure" not in body
            key = 200 if ok else (-1 if resp.status == 200 else resp.status)  # -1: refused
            statuses[key] = statuses.get(key, 0) + 1

    connector = aiohttp.TCPConnector(limit=ANNOUNCE_CONCURRENCY)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(one(http) for _ in range(count)))
    return {"took_s": round(time.monotonic() - started, 2), "replies": statuses}


def test_a_burst_of_announces_does_not_stall_the_node(seeder, tmp_path):
    info = seeder.json("share", str(make_file(tmp_path / "burst" / "burst.bin", 1 << 20)))
    port = _tracker_port(seeder, info["uri"])
    before = seeder.json("node", "status")
    pinger = Pinger(seeder, "status", every=0.1)
    pinger.start()
    try:
        burst = asyncio.run(_burst(port, info["uri"], bytes.fromhex(info["infohash"]),
                                   ANNOUNCES))
    finally:
        pinger.halt()
    after = seeder.json("node", "status")
    figures = {
        "burst": burst, "status_answers": spread(pinger.times),
        "loop_lag_recent_ms": after["loop_lag_recent_ms"],
        "loop_lag_max_ms_before": before["loop_lag_max_ms"],
        "loop_lag_max_ms_after": after["loop_lag_max_ms"],
        "rss_before": before["resources"]["rss"], "rss_after": after["resources"]["rss"],
    }
    print(f"load, {ANNOUNCES} announces: {figures}")
    assert burst["replies"] == {200: ANNOUNCES}, figures
    assert not pinger.errors, pinger.errors[:5]
    assert pinger.times and max(pinger.times) < LIST_ANSWER_WITHIN, figures
    assert after["loop_lag_recent_ms"] < LOOP_LAG_BOUND_MS, figures
    # the node still serves the share it was flooded through
    assert next(r for r in seeder.json("list") if r["id"] == info["infohash"])["state"] == \
        "seeding"
    seeder.json("unshare", info["infohash"])
