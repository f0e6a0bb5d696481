"""Issue 2.3: a standard BitTorrent client fetches an open share over onions only.

Debian's aria2c (1.36) runs under torsocks, pointed by a torsocks.conf of ours at a node's
tor SOCKS port (``obt node status --json`` ``tor.socks``). It reads the trackers from the
.torrent that ``obt share --torrent-out`` wrote (the same bytes the share's URI serves),
resolves every ``.onion`` name through torsocks' onion address range, announces with a
port and no ``ip`` (nobody can dial it), and dials the onion peers the tracker hands it.

- An open share: aria2c's copy is byte-identical (aria2 < 1.37 computes its own info-hash
  for a hybrid torrent: the tracker and the bridges take it as another name).
- A closed share: aria2c gets nothing and logs the tracker's reason.
- Nothing leaves the namespace (the module's leak check), and under strace aria2c's only
  connections are to the tor SOCKS port: torsocks allows no other (``AllowOutboundLocalhost``
  stays off, so not even loopback services of the test network are reached directly).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import bencodepy
import pytest

from onionshare_bt.tracker.core import CLOSED_REASON
from onionshare_bt.tracker.metafile import legacy_info_hash

ARIA2_FLAGS = ["--async-dns=false", "--disable-ipv6=true", "--interface=127.0.0.1",
               "--enable-dht=false", "--enable-dht6=false",
               "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-time=0",
               "--summary-interval=0", "--console-log-level=notice", "--log-level=info"]
ONION_ANNOUNCE = re.compile(r"http://[a-z2-7]{56}\.onion/private/[A-Za-z0-9_-]{22,}/announce")


def make_share(root: Path, name: str, megabytes: int) -> Path:
    share = root / name
    (share / "deep" / "er").mkdir(parents=True)
    (share / "empty.txt").write_bytes(b"")
    (share / "deep" / "Grüße – 東京.txt").write_text("non-ASCII names travel too\n", "utf-8")
    (share / "deep" / "er" / "small.bin").write_bytes(secrets.token_bytes(40_000))
    (share / "large.bin").write_bytes(secrets.token_bytes(megabytes * 1024 * 1024 + 123))
    return share


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file, padding files (``.pad/``, written by aria2 < 1.37) left out."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and ".pad" not in p.relative_to(root).parts}


@pytest.fixture(scope="module")
def tools():
    found = {name: shutil.which(name) for name in ("aria2c", "torsocks")}
    missing = [name for name, path in found.items() if path is None]
    assert not missing, f"{missing} missing: scripts/setup.sh installs aria2 and torsocks"
    return found


@pytest.fixture(scope="module")
def torsocks_conf(node_b, tmp_path_factory) -> Path:
    """A torsocks.conf pointing at node B's tor (a friend's Tor, not the sharer's)."""
    host, port = node_b.json("node", "status")["tor"]["socks"]
    conf = tmp_path_factory.mktemp("torsocks") / "torsocks.conf"
    conf.write_text(f"TorAddress {host}\nTorPort {port}\nOnionAddrRange 127.42.42.0/24\n")
    return conf


@pytest.fixture(scope="module")
def open_share(node_a, tmp_path_factory):
    root = tmp_path_factory.mktemp("open")
    src = make_share(root, "open share", 4)
    torrent = root / "open.torrent"
    proc = node_a.run("share", "--open", "--torrent-out", str(torrent), str(src), "--json")
    assert proc.returncode == 0, proc.stderr + node_a.log()
    return src, json.loads(proc.stdout), torrent, proc.stderr


@pytest.fixture(scope="module")
def closed_share(node_a, tmp_path_factory):
    root = tmp_path_factory.mktemp("closed")
    src = make_share(root, "closed share", 1)
    torrent = root / "closed.torrent"
    proc = node_a.run("share", "--torrent-out", str(torrent), str(src), "--json")
    assert proc.returncode == 0, proc.stderr
    return src, json.loads(proc.stdout), torrent


def aria2(tools, conf: Path, torrent: Path, dest: Path, *extra: str, timeout: float = 300,
          trace: Path | None = None) -> tuple[subprocess.CompletedProcess, float, str]:
    """Run aria2c under torsocks (and strace, if ``trace``); (process, seconds, log)."""
    log = dest.parent / f"{dest.name}.aria2.log"
    cmd = [tools["torsocks"], tools["aria2c"], *ARIA2_FLAGS, f"--log={log}", "-d", str(dest),
           *extra, str(torrent)]
    if trace is not None:
        cmd = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
               *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBT_")}
    env["TORSOCKS_CONF_FILE"] = str(conf)
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=dest.parent)
    return proc, time.monotonic() - started, log.read_text(errors="replace") if log.exists() \
        else ""


def test_share_open_writes_the_torrent_and_says_how_to_fetch_it(node_a, node_b, open_share,
                                                                 tools, tmp_path):
    src, info, torrent, stderr = open_share
    assert info["open"] is True
    assert "torsocks aria2c" in stderr and "--enable-dht=false" in stderr
    assert "--bt-enable-lpd=false" in stderr and "--enable-peer-exchange=false" in stderr
    served = node_b.fetch_torrent(info["uri"])
    assert served == (200, torrent.read_bytes())  # the file is what the URI serves
    data = bencodepy.decode(torrent.read_bytes())
    urls = [f"http://{o}/private/{info['uri'].rsplit('/', 1)[1]}/announce"
            for o in info["onions"]]
    assert data[b"announce-list"][0] == [u.encode() for u in urls]
    assert set(data) == {b"announce", b"announce-list", b"info", b"piece layers"}
    shown = subprocess.run([tools["aria2c"], "--show-files", str(torrent)], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL).stdout
    assert sorted(ONION_ANNOUNCE.findall(shown)) == sorted(urls)  # listed once each
    for path in (f"./{src.name}/large.bin", f"./{src.name}/deep/er/small.bin",
                 f"./{src.name}/deep/Grüße – 東京.txt", f"./{src.name}/empty.txt"):
        assert path in shown, shown
    legacy = legacy_info_hash(torrent.read_bytes())
    assert f"Info Hash: {legacy.hex()}" in shown  # aria2 1.36's own name for a hybrid
    listed = {r["id"]: r for r in node_a.json("list")}
    assert listed[info["infohash"]]["open"] is True


def test_aria2c_under_torsocks_fetches_an_open_share_byte_identical(
        node_a, open_share, torsocks_conf, tools, tmp_path, capsys):
    src, info, torrent, _ = open_share
    dest = tmp_path / "aria2"
    dest.mkdir()
    trace = tmp_path / "strace.txt" if shutil.which("strace") else None
    proc, seconds, log = aria2(tools, torsocks_conf, torrent, dest, "--bt-stop-timeout=240",
                               trace=trace)
    assert proc.returncode == 0, proc.stdout[-3000:] + log[-3000:] + node_a.log()
    assert digests(dest / src.name) == digests(src)
    size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    with capsys.disabled():
        print(f"\naria2c under torsocks: {size / 1e6:.1f} MB in {seconds:.1f} s "
              f"({size / 1e6 / seconds:.2f} MB/s incl. tracker and circuit set-up)")
    peers = node_a.json("list", "--peers", info["infohash"])
    assert sum(p["up"] for p in peers["paths"] if p["direction"] == "in") >= size
    if trace is not None:
        assert_only_tor_socks(trace, torsocks_conf)


def assert_only_tor_socks(trace: Path, conf: Path) -> None:
    """Every connect() aria2c made went to the tor SOCKS port; no datagram was sent."""
    port = re.search(r"TorPort (\d+)", conf.read_text()).group(1)
    lines = trace.read_text().splitlines()
    inet = [line for line in lines if "connect(" in line and "AF_INET" in line]
    assert inet, "strace saw no connect()"
    allowed = f'sin_port=htons({port}), sin_addr=inet_addr("127.0.0.1")'
    assert [line for line in inet if allowed not in line] == []
    datagrams = [line for line in lines if re.search(r"send(to|msg)\(", line)
                 and "AF_INET" in line]
    assert datagrams == []


def test_aria2c_gets_nothing_from_a_closed_share_and_logs_why(
        closed_share, torsocks_conf, tools, tmp_path):
    src, info, torrent = closed_share
    assert info["open"] is False
    dest = tmp_path / "aria2-closed"
    dest.mkdir()
    proc, seconds, log = aria2(tools, torsocks_conf, torrent, dest, "--bt-stop-timeout=45",
                               timeout=240)
    assert proc.returncode != 0
    assert "this share admits obt nodes only" in log, log[-3000:]
    assert CLOSED_REASON in log
    got = [p for p in dest.rglob("*") if p.is_file() and p.stat().st_size
           and not p.name.endswith(".aria2")]
    assert not any(p.read_bytes().strip(b"\0") for p in got)  # not one byte of the files


def test_publish_opens_and_closes_a_share(node_a, closed_share):
    _, info, _ = closed_share
    opened = node_a.json("publish", "--open", info["infohash"])
    assert opened["open"] is True
    assert {r["id"]: r["open"] for r in node_a.json("list")}[info["infohash"]] is True
    closed = node_a.json("publish", "--closed", info["infohash"])
    assert closed["open"] is False
    proc = node_a.run("publish", "--open")
    assert proc.returncode == 2 and "ID of a share" in proc.stderr


def test_get_torrent_out_writes_what_the_share_serves(node_b, open_share, tmp_path):
    src, info, torrent, _ = open_share
    out = tmp_path / "fetched.torrent"
    proc = node_b.run("get", info["uri"], "-o", str(tmp_path / "dl"), "--torrent-out",
                      str(out), "--json")
    assert proc.returncode == 0, proc.stderr + node_b.log()
    assert out.read_bytes() == torrent.read_bytes()
    assert digests(tmp_path / "dl" / src.name) == digests(src)
