"""The canary: the leak check sees a leak, so its silence elsewhere means something.

Runs first in the Tor tier. Every other module ends by asserting that the sinkhole counted
nothing (tests/conftest.py); these tests leak on purpose and assert that it did count, and
that the capture names what leaked.
"""

from __future__ import annotations

import socket
import subprocess
import time

import libtorrent as lt
import pytest

from tests import leak

pytestmark = pytest.mark.leaks_on_purpose


def _caught(sinkhole, mark, needle: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count, what = sinkhole.report(mark)
        if count and any(needle in line for line in what):
            return what
        time.sleep(0.05)
    count, what = sinkhole.report(mark)
    pytest.fail(f"the sinkhole missed a leak: {count} packet(s), captured {what}")


def test_the_suite_runs_inside_the_sinkhole(sinkhole):
    assert leak.active() is not None, "run the suite with bash test.sh (scripts/sinkhole.sh)"
    assert sinkhole is not None
    addresses = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True,
                               check=True).stdout
    # loopback and the sinkhole's own dead-end address are all there is
    assert "127.0.0.1" in addresses
    assert [line for line in addresses.splitlines()
            if "127.0.0.1" not in line and "192.0.2.1/" not in line] == []


def test_a_dns_lookup_is_caught(sinkhole):
    mark = sinkhole.mark()
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("leak-canary.example.com", 80)
    what = _caught(sinkhole, mark, "DNS query 'leak-canary.example.com'")
    assert any("192.0.2.53:53" in line for line in what)


def test_a_child_process_connecting_out_is_caught(sinkhole):
    mark = sinkhole.mark()
    subprocess.run(["python3", "-c", "import socket; s = socket.socket(); s.settimeout(0.5)\n"
                    "try: s.connect(('198.51.100.7', 6881))\nexcept OSError: pass"], check=True)
    _caught(sinkhole, mark, "TCP 192.0.2.1:")


def test_a_plain_libtorrent_session_leaks_and_is_caught(sinkhole, tmp_path):
    """What obt's engine must never do: a stock session announces to a .torrent's tracker."""
    (tmp_path / "f").write_bytes(b"x" * 20000)
    ct = lt.create_torrent(lt.list_files(str(tmp_path / "f")))
    ct.add_tracker("http://tracker.leak-canary.example:6969/announce")
    lt.set_piece_hashes(ct, str(tmp_path))
    ses = lt.session({"enable_dht": False, "enable_lsd": False, "enable_upnp": False,
                      "enable_natpmp": False, "listen_interfaces": "127.0.0.1:0"})
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(lt.bencode(ct.generate()))
    params.save_path = str(tmp_path / "dl")
    mark = sinkhole.mark()
    ses.add_torrent(params)
    try:
        _caught(sinkhole, mark, "tracker.leak-canary.example")
    finally:
        ses.pause()
