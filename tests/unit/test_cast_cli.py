"""``obt cast``, ``obt listen`` and ``obt casts`` through the real CLI against a fake node:
what each sends, --stop picking by ID prefix or every one, bad input refused before any
node, and text from the network rendered safely."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_relay_notice import FakeNode, obt
from tests.unit.test_relay_notice import home  # noqa: F401  (fixture)

ONION = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad"
URI = f"http://{ONION}.onion/cast/" + "T" * 32
HOSTILE = "evil\x1b[2J\u202egpj.exe"

ROWS = [
    {"id": "c0ffee01", "role": "broadcast", "state": "live", "listeners": 5, "serving": 2,
     "depth": 2, "source": "/music/show.flac", "uri": URI, "error": None},
    {"id": "c0ffee02", "role": "broadcast", "state": "ended", "listeners": 0, "serving": 0,
     "depth": 0, "source": "/music/b.flac", "uri": URI, "error": None},
    {"id": "beef0001", "role": "listen", "state": "listening", "depth": 2,
     "parent": HOSTILE + ".onion", "serving": 1, "fanout": 2, "url": "http://127.0.0.1:1/x",
     "gaps": [{"stall_s": 0.6, "pages_lost": 0}], "error": HOSTILE},
]


@pytest.fixture
def node(home):  # noqa: F811
    fake = FakeNode(home, {
        "casts": ROWS,
        "cast": lambda args: {**ROWS[0], "uri": URI},
        "cast_stop": lambda args: {"id": args["id"], "state": "stopped"},
        "listen": lambda args: {**ROWS[2], "url": "http://127.0.0.1:9/tok/listen.ogg"},
        "listen_stop": lambda args: {"id": args["id"], "state": "stopped"},
    })
    fake.start()
    yield fake
    fake.stop()


def test_cast_sends_its_settings_and_prints_the_uri(node, tmp_path):
    result = obt("cast", str(tmp_path / "show.flac"), "--fanout", "3", "--bitrate", "96")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == URI
    assert node.calls[-1] == ("cast", {"source": str(tmp_path / "show.flac"), "bitrate": 96,
                                       "fanout": 3})


def test_stop_takes_an_id_prefix_or_every_one_of_its_kind(node):
    result = obt("cast", "--stop", "c0ffee02", "--json")
    assert result.exit_code == 0, result.stderr
    assert [c for c in node.calls if c[0] == "cast_stop"] == [("cast_stop", {"id": "c0ffee02"})]
    node.calls.clear()
    assert obt("cast", "--stop").exit_code == 0
    assert [c[1]["id"] for c in node.calls if c[0] == "cast_stop"] == ["c0ffee01", "c0ffee02"]
    node.calls.clear()
    assert obt("listen", "--stop").exit_code == 0
    assert [c for c in node.calls if c[0].endswith("stop")] == [
        ("listen_stop", {"id": "beef0001"})]
    missing = obt("listen", "--stop", "nope")
    assert missing.exit_code == 2 and "no listening 'nope'" in missing.stderr


def test_listen_sends_its_settings_and_prints_the_loopback_url(node, tmp_path):
    result = obt("listen", URI, "--fanout", "0", "-o", str(tmp_path / "out.ogg"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "http://127.0.0.1:9/tok/listen.ogg"
    assert node.calls[-1] == ("listen", {"uri": URI, "fanout": 0,
                                         "out": str(tmp_path / "out.ogg")})


@pytest.mark.parametrize("args, message", [
    (("listen", f"http://{ONION}.onion/private/" + "T" * 32), "obt get"),
    (("listen", "http://example.com/cast/" + "T" * 32), "onion"),
    (("listen",), "needs the broadcast's URI"),
    (("cast",), "needs a SOURCE"),
    (("cast", "x.wav", "--fanout", "0"), "0"),
])
def test_bad_input_is_refused_before_any_node(node, args, message):
    result = obt(*args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not [c for c in node.calls if c[0] in ("cast", "listen")]


def test_casts_renders_both_roles_without_control_characters(node):
    result = obt("casts")
    assert result.exit_code == 0, result.stderr
    assert "c0ffee01  broadcast  live     5 listening, 2 served here, depth 2" in result.stdout
    assert "beef0001  listen     listening depth 2 via" in result.stdout
    assert "1 gap(s)" in result.stdout
    for char in ("\x1b", "\u202e"):
        assert char not in result.stdout
    assert json.loads(obt("casts", "--json").stdout) == ROWS
