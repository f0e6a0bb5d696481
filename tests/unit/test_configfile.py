"""config.toml changed in place (``obt config set``, the web UI's settings): values read as
their setting's kind and checked as a starting node checks them, all or nothing, comments
and other lines kept, 0600; the web UI's op refuses every setting that names a program, a
tor option, a network or a key."""

from __future__ import annotations

import asyncio
import json
import stat

import pytest
from click.testing import CliRunner

from onionshare_bt import config, configfile
from onionshare_bt.cli import main
from onionshare_bt.errors import UsageError
from onionshare_bt.ops import requests as rq
from onionshare_bt.ops.node import NodeOps

FILE = """# my node
onions = 2   # K
trust_timeout = 10
tor_options = [
  ["EntryNodes", "$AAAA"],
]
"""


@pytest.mark.parametrize("key, text, value", [
    ("onions", " 3 ", 3), ("stall_timeout", "90", 90.0), ("ratio", "1.5", 1.5),
    ("relay", "off", False), ("relay", "TRUE", True), ("open_shares", "yes", True),
    ("relay_contact", "ops@example.org", "ops@example.org"), ("download_rate", "0", 0),
    ("onions", 4, 4), ("relay", False, False), ("upload_rate", "1000000", 1000000),
    ("max_paths", "4", 4), ("max_paths", "0", 0),
])
def test_a_value_is_read_as_its_settings_kind(key, text, value):
    got = configfile.value_of(key, text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("key, text, says", [
    ("onions", "2.5", "whole number"), ("onions", "0", "above 0"), ("ratio", "nan", "at least"),
    ("stall_timeout", "inf", "above 0"), ("download_rate", "-1", "at least 0"),
    ("upload_rate", "-1", "at least 0"), ("max_paths", "-1", "at least 0"),
    ("relay", "maybe", "true or false"), ("relay_contact", "a\nb", "one line"),
    ("bogus", "1", "no setting is called"),
])
def test_a_bad_value_is_refused(key, text, says):
    with pytest.raises(UsageError, match=says):
        configfile.value_of(key, text)


def test_only_what_changed_is_written_and_the_rest_of_the_file_is_kept(tmp_path):
    (tmp_path / "config.toml").write_text(FILE)
    info = configfile.update(tmp_path, {"onions": "3", "trust_timeout": "10",
                                        "stall_timeout": "120", "ratio": "2"})
    assert info["changed"] == {"onions": [2, 3], "ratio": [1.0, 2.0]}
    text = (tmp_path / "config.toml").read_text()
    assert text == FILE.replace("onions = 2   # K", "onions = 3") + "ratio = 2.0\n"
    assert stat.S_IMODE((tmp_path / "config.toml").stat().st_mode) == 0o600
    cfg = config.load(tmp_path)
    assert (cfg.onions, cfg.ratio, cfg.trust_timeout, cfg.stall_timeout) == (3, 2.0, 10, 120.0)
    assert cfg.tor_options == (("EntryNodes", "$AAAA"),)
    assert configfile.update(tmp_path, {"onions": "3"})["changed"] == {}


@pytest.mark.parametrize("changes", [
    {"onions": "3", "trust_timeout": "soon"},  # one bad value: none is written
    {"onions": "9"},  # a kind that is right, a value load() refuses
    {"relay_nickname": "not a nickname!"},
])
def test_nothing_is_written_unless_every_value_is_good(tmp_path, changes):
    (tmp_path / "config.toml").write_text(FILE)
    with pytest.raises(UsageError):
        configfile.update(tmp_path, changes)
    assert (tmp_path / "config.toml").read_text() == FILE
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]  # no temporary left


def test_no_file_yet_gets_one_with_the_changed_lines_only(tmp_path):
    info = configfile.update(tmp_path, {"onions": "2", "stall_timeout": "60"})
    assert info["changed"] == {"stall_timeout": [120.0, 60.0]}
    assert (tmp_path / "config.toml").read_text() == "stall_timeout = 60.0\n"


@pytest.mark.parametrize("key, value", [
    ("tor", "/bin/sh"), ("player", "sh -c 'touch /tmp/x'"), ("network", "/tmp/net"),
    ("tor_options", "x"), ("release_keys", "x"), ("relay_port", "80"),
])
def test_the_web_uis_operation_refuses_what_names_a_program_option_network_or_key(
        tmp_path, key, value):
    ops = NodeOps(config.load(tmp_path), None, None, set(), None)
    (tmp_path / "config.toml").write_text(FILE)
    with pytest.raises(UsageError, match="not settable here|no setting"):
        asyncio.run(ops.settings_set(rq.SettingsSet(values={key: value})))
    assert (tmp_path / "config.toml").read_text() == FILE
    assert not set(configfile.UI_KEYS) & {"tor", "player", "network", "tor_options",
                                          "release_keys"}


def test_the_web_uis_operation_writes_and_settings_show_the_file(tmp_path):
    ops = NodeOps(config.load(tmp_path), None, None, set(), None)
    info = asyncio.run(ops.settings_set(rq.SettingsSet(values={"onions": "4"})))
    assert info["changed"] == {"onions": [2, 4]}
    shown = asyncio.run(ops.settings(rq.Settings()))
    assert shown["onions"] == 2 and shown["file"] == {"onions": 4}  # running: the old K


def test_obt_config_set_and_show(tmp_path):
    runner = CliRunner()
    home = ["--home", str(tmp_path)]
    done = runner.invoke(main, [*home, "config", "set", "onions", "3", "relay", "false",
                                "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["changed"] == {"onions": [2, 3], "relay": [True, False]}
    shown = json.loads(runner.invoke(main, [*home, "config", "show", "--json"]).output)
    assert shown["settings"]["onions"] == 3 and shown["file"] == ["onions", "relay"]
    bad = runner.invoke(main, [*home, "config", "set", "onions", "3", "ratio"])
    assert bad.exit_code == 2 and "pairs" in bad.output
    bad = runner.invoke(main, [*home, "config", "set", "onions", "many"])
    assert bad.exit_code == 2 and "whole number" in bad.output
    assert (tmp_path / "config.toml").read_text() == "onions = 3\nrelay = false\n"


def test_max_paths_beyond_the_cap_is_refused_when_the_node_reads_it():
    for bad in (33, -1, True, "8"):
        with pytest.raises(UsageError, match="max_paths must be a number from 0 to 32"):
            config.checked({"max_paths": bad})
    assert config.checked({"max_paths": 0})["max_paths"] == 0
