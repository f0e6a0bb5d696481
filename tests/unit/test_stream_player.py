"""Which player obt play starts, the config settings it reads, and the CLI without a node."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from onionshare_bt import config
from onionshare_bt.cli import main
from onionshare_bt.errors import UsageError
from onionshare_bt.stream import player


def which_of(*installed):
    return lambda name: f"/usr/bin/{name}" if name in installed else None


def test_the_configured_player_wins_and_keeps_its_arguments():
    assert player.choose("mpv --fs --volume=50", which_of("mpv", "vlc")) == [
        "mpv", "--fs", "--volume=50"]
    assert player.choose("'/opt/My Player/play'", lambda n: n) == ["/opt/My Player/play"]


def test_a_configured_player_that_is_missing_is_an_error_not_a_fallback():
    with pytest.raises(UsageError, match="not installed"):
        player.choose("mpv", which_of("vlc"))
    with pytest.raises(UsageError, match="not a command line"):
        player.choose("mpv 'unclosed", which_of("mpv"))


def test_without_configuration_the_first_known_player_on_path():
    assert player.choose("", which_of("ffplay", "vlc")) == ["vlc"]
    assert player.choose(None, which_of("ffplay")) == ["ffplay"]
    assert player.choose("", which_of()) is None


def test_known_players_are_kept_off_the_network_and_the_url_comes_last():
    url = "http://127.0.0.1:1/t/0/a.opus"
    assert player.command(["mpv", "--fs"], url) == ["mpv", "--fs", "--ytdl=no", url]
    assert player.command(["/usr/bin/vlc"], url) == [
        "/usr/bin/vlc", "--no-metadata-network-access", url]
    assert player.command(["other"], url) == ["other", url]


def test_player_and_download_rate_settings(tmp_path):
    (tmp_path / "config.toml").write_text('player = "mpv --fs"\ndownload_rate = 262144\n')
    cfg = config.load(home=tmp_path)
    assert cfg.player == "mpv --fs" and cfg.download_rate == 262144
    for bad in ("player = 3", "download_rate = -1", 'download_rate = "fast"',
                "download_rate = true"):
        (tmp_path / "config.toml").write_text(bad + "\n")
        with pytest.raises(UsageError):
            config.load(home=tmp_path)


def test_play_refuses_a_public_or_malformed_uri_before_any_node(tmp_path):
    runner = CliRunner()
    env = {"OBT_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    from onionshare_bt.onion import onion_from_pubkey

    onion = onion_from_pubkey(bytes(32))
    result = runner.invoke(main, ["play", f"http://{onion}.onion/public/{'x' * 32}",
                                  "--no-player"], env=env)
    assert result.exit_code == 2 and "private URI" in result.output
    result = runner.invoke(main, ["play", "http://example.com/private/x", "--no-player"], env=env)
    assert result.exit_code == 2
    assert not (tmp_path / "home" / "node.pid").exists()  # no node was started
