"""Issue 1: `obt share` on one node, `obt get` on another, over onion services.

Everything goes through the CLI in subprocesses, on the real private Tor network.
"""

from __future__ import annotations

import hashlib
import json
import ipaddress
import re
import secrets
import time
from pathlib import Path

import psutil
import pytest

from onionshare_bt.onion import onion_from_pubkey

URI = re.compile(r"http://[a-z2-7]{56}\.onion/private/[A-Za-z0-9_-]{22,}")
IPV4 = re.compile(rb"(?<![0-9])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])")


def make_share(root: Path) -> Path:
    share = root / "photos & notes"
    (share / "2026" / "november" / "deep").mkdir(parents=True)
    (share / "zero.bin").write_bytes(b"")
    (share / "2026" / "Grüße – 東京.txt").write_text("non-ASCII names travel too\n", "utf-8")
    (share / "2026" / "november" / "deep" / "small.txt").write_text("x" * 1000)
    with open(share / "large.bin", "wb") as f:
        for _ in range(21):
            f.write(secrets.token_bytes(1024 * 1024))
    return share


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def non_loopback_connections(pid: int) -> list:
    bad = []
    for conn in psutil.Process(pid).net_connections(kind="inet"):
        for addr in (conn.laddr, conn.raddr):
            if addr and not ipaddress.ip_address(addr.ip).is_loopback:
                bad.append(conn)
    return bad


@pytest.fixture(scope="module")
def shared(node_a, tmp_path_factory):
    src = make_share(tmp_path_factory.mktemp("src"))
    info = node_a.json("share", str(src))
    return src, info


def test_share_prints_exactly_one_uri_line(node_a, shared):
    src, info = shared
    proc = node_a.run("share", str(src))  # the same content again: the same URI
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and URI.fullmatch(proc.stdout.strip())
    assert proc.stdout.strip() == info["uri"]
    assert info["name"] == src.name
    assert info["size"] == sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    assert {f["path"] for f in info["files"]} >= {f"{src.name}/zero.bin"}


def test_get_over_tor_is_byte_identical_and_every_byte_crossed_a_bridge(
    node_a, node_b, shared, tmp_path
):
    src, info = shared
    pids = [node_a.json("node", "status")["pid"], node_b.json("node", "status")["pid"]]
    ahead_before = node_b.json("node", "status")["bridges"]["dialled_ahead"]
    out = tmp_path / "out"
    proc = node_b.popen("get", info["uri"], "-o", str(out), "--json")
    samples = 0
    deadline = time.monotonic() + 240
    while proc.poll() is None:
        assert time.monotonic() < deadline, "download did not finish in time"
        for pid in pids:
            assert non_loopback_connections(pid) == []
        visible = (out / src.name).exists()  # looked at before the state is read
        rows = node_b.run("list", "--json")
        state = next((r["state"] for r in json.loads(rows.stdout or "[]")
                      if r["id"] == info["infohash"]), None)
        if state in ("downloading", "waiting for peers", "stalled"):
            assert not visible, "files appeared under their final name before verification"
        peers = node_b.run("list", "--peers", info["infohash"], "--json")
        if peers.returncode == 0:
            samples += 1
            data = json.loads(peers.stdout)
            endpoints = {p["endpoint"].rsplit(":", 1)[0] for p in data["paths"]
                         if p["direction"] == "out"}
            for peer in data["engine_peers"]:
                assert peer["host"] in endpoints, (peer, endpoints)
        time.sleep(0.3)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr + node_b.log()
    assert samples >= 1
    result = json.loads(stdout)
    assert result["state"] == "complete" and result["path"] == str(out / src.name)
    assert digests(out / src.name) == digests(src)
    assert [p.name for p in out.iterdir()] == [src.name]  # no staging folder left behind

    b = node_b.json("list", "--peers", info["infohash"])
    a = node_a.json("list", "--peers", info["infohash"])
    b_row = next(r for r in node_b.json("list") if r["id"] == info["infohash"])
    a_row = next(r for r in node_a.json("list") if r["id"] == info["infohash"])
    down = sum(p["down"] for p in b["paths"] if p["direction"] == "out")
    up = sum(p["up"] for p in a["paths"] if p["direction"] == "in")
    assert down >= b_row["payload_down"] >= info["size"]
    assert up >= a_row["payload_up"] >= info["size"]
    for peer in a["engine_peers"]:
        assert ipaddress.ip_address(peer["host"]) in ipaddress.ip_network("127.1.0.0/16")
    assert b_row["state"] == "complete"
    # every first path to one of the share's onions took a stream dialled before libtorrent
    # asked for it: the share's own onion while the .torrent came, the others as the
    # announce named them
    first_paths = [p for p in b["paths"]
                   if p["direction"] == "out" and p["lane"] == 0 and p["connections"]]
    assert len(first_paths) == len(info["onions"]) >= 2, b["paths"]
    ahead = node_b.json("node", "status")["bridges"]["dialled_ahead"] - ahead_before
    assert ahead == len(first_paths), (ahead, b["paths"])


def test_tracker_replies_hold_no_ip_and_wrong_token_is_a_plain_404(node_a, node_b, shared):
    import asyncio

    import aiohttp
    from aiohttp_socks import ProxyConnector

    _, info = shared
    socks = node_b.json("node", "status")["tor"]["socks"]
    onion = info["uri"].split("/")[2]
    token = info["uri"].rsplit("/", 1)[1]
    me = onion_from_pubkey(secrets.token_bytes(32))
    query = (f"info_hash={''.join('%%%02x' % b for b in bytes.fromhex(info['infohash']))}"
             f"&peer_id={'a' * 20}&ip={me}.onion&port=6881&left=5&event=started")

    async def fetch_all():
        connector = ProxyConnector.from_url(f"socks5://{socks[0]}:{socks[1]}", rdns=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            out = {}
            for name, path in [
                ("announce", f"/private/{token}/announce?{query}"),
                ("torrent", f"/private/{token}"),
                ("wrong", f"/private/{secrets.token_urlsafe(24)}"),
                ("wrong_announce", f"/private/{secrets.token_urlsafe(24)}/announce?{query}"),
                ("missing", "/public/nothing"),
            ]:
                async with http.get(f"http://{onion}{path}") as resp:
                    out[name] = (resp.status, await resp.read(), dict(resp.headers))
            return out

    replies = asyncio.run(asyncio.wait_for(fetch_all(), 120))
    status, body, headers = replies["announce"]
    assert status == 200 and b".onion" in body
    assert not IPV4.search(body), body
    assert "Server" not in headers
    assert replies["torrent"][0] == 200
    assert replies["wrong"][:2] == replies["missing"][:2] == replies["wrong_announce"][:2]
    assert replies["wrong"][0] == 404


# -- errors through the CLI ------------------------------------------------------------
def test_missing_path_is_a_usage_error(node_a, tmp_path):
    proc = node_a.run("share", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr


def test_empty_folder_is_refused(node_a, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    proc = node_a.run("share", str(tmp_path / "empty"))
    assert proc.returncode == 2 and "no files to share" in proc.stderr


@pytest.mark.parametrize("uri", ["http://nope.onion/private/abc", "magnet:?xt=urn:btih:00",
                                 "http://example.com/private/" + "a" * 32])
def test_malformed_uri_is_a_usage_error(node_b, uri):
    proc = node_b.run("get", uri)
    assert proc.returncode == 2 and proc.stderr.startswith("obt: error:")
    assert "hint:" in proc.stderr


#: a valid v3 address (a real ed25519 point) that nobody serves on the private network;
#: a random 32-byte string is often not a valid point, which tor refuses outright (0xF6)
UNSERVED = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad"


def test_onion_nobody_serves_fails_within_the_bound(node_b, tmp_path):
    dead = UNSERVED
    started = time.monotonic()
    proc = node_b.run("get", f"http://{dead}.onion/private/{secrets.token_urlsafe(24)}",
                      "-o", str(tmp_path), "--timeout", "15")
    assert time.monotonic() - started < 120
    assert proc.returncode == 3, proc.stderr
    assert "onion" in proc.stderr.lower()
    assert list(tmp_path.iterdir()) == []


def test_wrong_token_is_refused(node_b, shared, tmp_path):
    _, info = shared
    wrong = info["uri"].rsplit("/", 1)[0] + "/" + secrets.token_urlsafe(24)
    proc = node_b.run("get", wrong, "-o", str(tmp_path), "--timeout", "60")
    assert proc.returncode == 5, proc.stderr
    assert "Nothing is shared at that URI" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_no_node_running(fresh_node):
    proc = fresh_node.run("list")
    assert proc.returncode == 1 and "No obt node is running" in proc.stderr
    assert "obt node start" in proc.stderr


def test_tor_binary_missing_says_how_to_install(fresh_node):
    proc = fresh_node.run("node", "start", OBT_TOR="/nonexistent/tor")
    assert proc.returncode == 3, proc.stderr
    assert "apt-get install -y tor" in proc.stderr


def test_one_shares_onion_never_answers_for_another_share(node_a, node_b, shared, tmp_path):
    _, first = shared
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("a second share of the same node\n")
    second = node_a.json("share", str(other))
    assert set(second["onions"]).isdisjoint(first["onions"])
    onion_1 = first["uri"].split("/")[2]
    token_2 = second["uri"].rsplit("/", 1)[1]
    crossed = node_b.fetch_torrent(f"http://{onion_1}/private/{token_2}")
    assert crossed[0] == 404
    assert node_b.fetch_torrent(second["uri"])[0] == 200


def test_no_token_or_key_reaches_a_log(node_a, node_b, shared):
    _, info = shared
    token = info["uri"].rsplit("/", 1)[1]
    for node in (node_a, node_b):
        for log in [node.home / "node.log", *node.home.glob("tor/*.log")]:
            text = log.read_text(errors="replace")
            assert token not in text, log
            assert "ED25519-V3:" not in text, log
    for node in (node_a, node_b):
        mode = (node.home / "state.sqlite3").stat().st_mode & 0o777
        assert mode == 0o600 and (node.home.stat().st_mode & 0o777) == 0o700
