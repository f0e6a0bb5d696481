"""Relay settings in the config: no shared default nickname, and a bad one is refused."""

from __future__ import annotations

import pytest

from onionshare_bt import config
from onionshare_bt.errors import UsageError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("OBT_HOME", str(tmp_path / "home"))
    for name in ("OBT_NETWORK", "OBT_TOR"):
        monkeypatch.delenv(name, raising=False)


def test_default_nickname_is_left_to_the_node_to_draw():
    cfg = config.load()
    assert cfg.relay_nickname == "" and config.Config(home=cfg.home).relay_nickname == ""


def test_configured_nickname_is_kept(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('relay_nickname = "Quietfox7"\n')
    assert config.load().relay_nickname == "Quietfox7"


@pytest.mark.parametrize("bad", ['"has space"', '"a-b"', f'"{"x" * 20}"', "7"])
def test_bad_nickname_is_refused(tmp_path, bad):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(f"relay_nickname = {bad}\n")
    with pytest.raises(UsageError, match="relay_nickname"):
        config.load()


def test_notice_marker_and_log_live_in_the_home():
    cfg = config.load()
    assert cfg.relay_notice_path.parent == cfg.home == cfg.log_path.parent
