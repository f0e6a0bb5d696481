"""``obt share`` through the real CLI against a fake node: hidden files counted and said,
--include-hidden sent, bad paths refused before any node; and text from the network
rendered without control or bidi-override characters."""

from __future__ import annotations

import json
import time

import pytest

from tests.unit.test_relay_notice import FakeNode, obt
from tests.unit.test_relay_notice import home  # noqa: F401  (fixture)

ONION = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad"
HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07\u202egpj.exe\u2066\x9b31m\x7fname"
UNSAFE = ("\x1b", "\x07", "\u202e", "\u2066", "\x9b", "\x7f")


def share_reply(args, **extra):
    return {"uri": f"http://{ONION}.onion/private/tok", "infohash": "ab" * 20, "name": "share",
            "size": 1, "piece_length": 16384, "files": [], "onions": [], **extra}


@pytest.fixture
def node(home):  # noqa: F811
    fake = FakeNode(home, {"share": share_reply})
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def folder(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    (share / "photo.jpg").write_bytes(b"jpg")
    (share / ".git").mkdir()
    (share / ".git" / "config").write_text("x")
    (share / ".env").write_text("TOKEN=1")
    return share


def test_hidden_files_left_out_are_counted_on_stderr_and_in_json(node, folder):
    result = obt("share", str(folder), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["hidden_skipped"] == 2
    assert "left out 2 hidden file(s) or folder(s)" in result.stderr
    assert "--include-hidden" in result.stderr
    assert node.calls[-1] == ("share", {"path": str(folder), "onions": None})


def test_the_nodes_count_wins_when_it_gives_one(node, folder):
    node.answers["share"] = lambda args: share_reply(args, hidden_skipped=0)
    result = obt("share", str(folder))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"http://{ONION}.onion/private/tok"
    assert "hidden" not in result.stderr


def test_include_hidden_is_sent_to_the_node(node, folder):
    result = obt("share", str(folder), "--include-hidden", "--json")
    assert result.exit_code == 0, result.stderr
    assert node.calls[-1][1]["include_hidden"] is True
    assert json.loads(result.stdout)["hidden_skipped"] == 0
    assert "hidden" not in result.stderr


def test_a_link_out_of_the_folder_is_refused_before_any_node(node, folder, tmp_path):
    (tmp_path / "secret").write_text("key")
    (folder / "docs").symlink_to(tmp_path / "secret")
    result = obt("share", str(folder))
    assert result.exit_code == 2
    assert result.stderr.startswith("obt: error: ") and str(folder / "docs") in result.stderr
    assert "obt: hint: " in result.stderr
    assert node.calls == []


def test_the_nodes_home_is_never_shared(node, home):  # noqa: F811
    (home / "keys").write_text("secret")
    for path in (home.parent, home, home / "keys"):
        result = obt("share", str(path))
        assert result.exit_code == 2, path
        assert "obt's own state folder" in result.stderr
    assert node.calls == []


# -- remote text on the terminal ----------------------------------------------------------
def assert_clean(text: str) -> None:
    for char in UNSAFE:
        assert char not in text, repr(char)


def test_list_and_catalogue_names_are_rendered_safely(node):
    node.answers["list"] = [{
        "id": "ab" * 20, "role": "download", "state": "downloading", "progress": 0.5,
        "peers": 1, "rate_down": 0, "rate_up": 0, "name": HOSTILE + "x" * 500,
        "uri": f"http://{ONION}.onion/private/tok"}]
    node.answers["casts"] = [
        {"id": "c1", "role": "broadcast", "state": "live", "listeners": 3, "serving": 2,
         "depth": 2, "source": HOSTILE + "y" * 300, "uri": f"http://{ONION}.onion/cast/t"},
        {"id": "l1", "role": "listen", "state": "listening", "depth": 1,
         "parent": HOSTILE, "serving": 0, "fanout": 2, "gaps": [], "url": "http://x/",
         "error": HOSTILE}]
    listed = obt("list")
    assert listed.exit_code == 0, listed.stderr
    assert_clean(listed.stdout)
    assert "c1  broadcast  live     3 listening, 2 served here, depth 2" in listed.stdout
    assert "evil" in listed.stdout and "…" in listed.stdout  # kept, cleaned, capped
    node.answers["catalogue"] = {"node": f"{ONION}.onion", "items": [{
        "infohash": "cd" * 20, "size": 10, "files": 1, "added": time.time(),
        "name": HOSTILE, "uri": f"http://{ONION}.onion/private/x"}]}
    shown = obt("get", f"http://{ONION}.onion/public/{'t' * 32}")
    assert shown.exit_code == 0, shown.stderr
    assert_clean(shown.stdout)
    assert "gpj.exe" in shown.stdout
    as_json = obt("get", f"http://{ONION}.onion/public/{'t' * 32}", "--json")
    assert json.loads(as_json.stdout)["items"][0]["name"] == HOSTILE  # data stays exact
    assert_clean(as_json.stdout)  # and JSON escapes it


def test_search_trust_mirror_and_update_output_are_rendered_safely(node):
    node.answers["search"] = {
        "unreachable": [{"onion": ONION, "error": HOSTILE}],
        "results": [{"name": HOSTILE, "size": 1, "degree": 1, "node": ONION + HOSTILE,
                     "uri": HOSTILE}]}
    node.answers["trust_graph"] = {"depth": 2, "tree": {"onion": ONION, "children": [
        {"onion": HOSTILE, "degree": 1, "reachable": False, "error": HOSTILE,
         "children": []}]}}
    node.answers["mirror_list"] = [{
        "source": HOSTILE, "follow": True, "synced": time.time(), "error": HOSTILE,
        "public_uri": f"http://{ONION}.onion/public/x",
        "items": [{"name": HOSTILE, "peers": 1, "uri": HOSTILE}]}]
    node.answers["update_check"] = {
        "current": "0.1.0", "offers": 1, "release": None,
        "unreachable": [{"onion": HOSTILE, "error": HOSTILE}], "refused": []}
    for args in (["search", "x"], ["trust", "graph"], ["mirror", "list"],
                 ["update", "check"]):
        result = obt(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert_clean(result.stdout)
        assert_clean(result.stderr)
        assert "evil" in result.stdout + result.stderr, args


def test_refused_releases_are_rendered_safely(node):
    node.answers["update_check"] = {
        "current": "0.1.0", "offers": 1, "release": None, "unreachable": [],
        "refused": [{"version": HOSTILE, "source": HOSTILE, "reason": HOSTILE}]}
    node.answers["release_list"] = [{"version": HOSTILE, "state": "refused", "reason": HOSTILE,
                                "path": None}]
    refused = obt("update", "check")
    assert refused.exit_code == 5
    assert_clean(refused.stderr)
    listed = obt("release", "list")
    assert listed.exit_code == 0, listed.stderr
    assert_clean(listed.stdout)


def test_error_messages_from_the_node_are_rendered_safely(node):
    node.answers["list"] = lambda args: (_ for _ in ()).throw(
        __import__("onionshare_bt.errors").errors.TorrentError(HOSTILE, hint=HOSTILE))
    result = obt("list")
    assert result.exit_code == 1
    assert_clean(result.stderr)
    assert "evil" in result.stderr
