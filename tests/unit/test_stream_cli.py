"""``obt play`` and ``obt list``'s stream lines, through the real CLI against a fake node."""

from __future__ import annotations

import json

import pytest

from onionshare_bt.cli import play as play_cli
from onionshare_bt.stream import player
from tests.unit.test_relay_notice import FakeNode, obt
from tests.unit.test_relay_notice import home  # noqa: F401  (fixture)

ID = "ab" * 20
URL = "http://127.0.0.1:41237/" + "t" * 32 + "/0/01%20tone.opus"


def play_reply(args):
    path = "album/list.m3u" if args.get("file") == "list" else "album/01 tone.opus"
    file = {"index": 0, "path": path, "size": 1000, "type": "audio/ogg", "playable": True,
            "from_start": 500}
    return {"id": ID, "name": "album", "state": "downloading", "url": URL, "file": file,
            "files": [file]}


@pytest.fixture
def node(home):  # noqa: F811
    fake = FakeNode(home, {"play": play_reply,
                           "get": lambda args: {"id": ID, "name": "album"}})
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def players(monkeypatch):
    """Players on PATH (none by default) and the commands obt ran; the node's media server
    serves every file (its refusals: ``ran.refused``)."""
    ran, installed = [], set()

    async def refused(url):
        assert url == URL
        return getattr(ran, "refused", None)

    monkeypatch.setattr(play_cli, "_refused", refused)
    monkeypatch.setattr(player.shutil, "which",
                        lambda name: f"/usr/bin/{name}" if name in installed else None)

    async def run(argv):
        ran.append(argv)
        return ran.exit_code if hasattr(ran, "exit_code") else 0

    ran = type("Ran", (list,), {})()
    monkeypatch.setattr(player, "run", run)
    return ran, installed


def test_play_an_id_prints_the_url_only_with_no_player(node, players):
    result = obt("play", ID[:8], "--no-player")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == URL + "\n"
    assert node.calls[-1] == ("play", {"id": ID[:8], "file": None})
    assert players[0] == []


def test_play_a_uri_starts_the_download_first_and_json_has_the_files(node, players, tmp_path):
    from onionshare_bt.onion import onion_from_pubkey

    uri = f"http://{onion_from_pubkey(bytes(32))}.onion/private/{'x' * 32}"
    result = obt("play", uri, "tone", "-o", str(tmp_path / "music"), "--print-url", "--json")
    assert result.exit_code == 0, result.stderr
    ops = [(op, args) for op, args in node.calls if op in ("get", "play")]
    assert ops == [("get", {"uri": uri, "target": str(tmp_path / "music"), "timeout": None}),
                   ("play", {"id": ID, "file": "tone"})]
    data = json.loads(result.stdout)
    assert data["url"] == URL and data["files"][0]["from_start"] == 500


def test_play_starts_the_player_found_on_path_kept_off_the_network(node, players):
    ran, installed = players
    installed.update({"mpv", "vlc"})
    result = obt("play", ID)
    assert result.exit_code == 0, result.stderr
    assert ran == [["mpv", "--ytdl=no", URL]]
    assert "playing album/01 tone.opus with mpv" in result.stderr
    assert result.stdout == URL + "\n"


def test_the_player_setting_and_flag(node, players, home):  # noqa: F811
    ran, installed = players
    installed.update({"mpv", "ffplay"})
    (home / "config.toml").write_text('player = "ffplay -nodisp"\n')
    assert obt("play", ID).exit_code == 0
    assert obt("play", ID, "--player", "mpv --fs").exit_code == 0
    assert ran == [["ffplay", "-nodisp", "-autoexit", URL], ["mpv", "--fs", "--ytdl=no", URL]]


def test_without_a_player_the_url_and_a_hint(node, players):
    result = obt("play", ID)
    assert result.exit_code == 0 and result.stdout == URL + "\n"
    assert "no media player found" in result.stderr and 'player = "mpv"' in result.stderr


def test_no_player_is_started_on_a_playlist(node, players):
    ran, installed = players
    installed.add("mpv")
    result = obt("play", ID, "list")
    assert result.exit_code == 2 and "is a playlist" in result.stderr
    assert ran == [] and result.stdout == ""
    assert obt("play", ID, "list", "--no-player").stdout == URL + "\n"  # the URL is no risk


def test_a_failing_player_is_an_error(node, players):
    ran, installed = players
    installed.add("vlc")
    ran.exit_code = 3
    result = obt("play", ID)
    assert result.exit_code == 1 and "the player exited with status 3" in result.stderr


def test_obt_list_shows_what_plays_and_how_far_ahead_of_each_reader(home):  # noqa: F811
    row = {"id": ID, "role": "download", "state": "downloading", "progress": 0.25, "peers": 2,
           "rate_down": 1000, "rate_up": 0, "name": "album", "uri": "http://x.onion/private/t",
           "stream": {"playable": [{"path": f"album/0{i} tone.opus", "size": 2_000_000,
                                    "from_start": 1_500_000 if i == 1 else 0} for i in (1, 2, 3, 4)],
                      "readers": [{"index": 0, "path": "album/01 tone.opus",
                                   "position": 100_000, "ahead": 1_400_000}]}}
    fake = FakeNode(home, {"list": [row], "casts": []})
    fake.start()
    try:
        result = obt("list")
    finally:
        fake.stop()
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2] == ("    playable: album/01 tone.opus (1.5 MB of 2.0 MB from start), "
                        "album/02 tone.opus (0 B of 2.0 MB from start), album/03 tone.opus "
                        "(0 B of 2.0 MB from start) and 1 more")
    assert lines[3] == "    reader: album/01 tone.opus at 100.0 kB, 1.4 MB ahead"


def test_no_player_is_started_on_a_file_the_node_refuses_to_serve(node, players):
    ran, installed = players
    installed.add("mpv")
    ran.refused = "it reads as text, as playlists and stream descriptions do: a player would " \
                  "fetch what it names, outside Tor"
    result = obt("play", ID)
    assert result.exit_code == 2 and "outside Tor" in result.stderr
    assert "obt starts no player on it" in result.stderr
    assert ran == [] and result.stdout == URL + "\n"
