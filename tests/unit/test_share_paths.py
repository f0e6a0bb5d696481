"""What sharing a path publishes: no link out of the folder, no node state, no dotfiles
unless asked, and the same info-hash as before for a plain folder."""

from __future__ import annotations

import os
from pathlib import Path

import libtorrent as lt
import pytest

from onionshare_bt.engine.metainfo import check_shareable, create, create_share, select
from onionshare_bt.errors import BadPath


def tree(root: Path) -> Path:
    share = root / "share"
    (share / "a" / "b").mkdir(parents=True)
    (share / "big.bin").write_bytes(os.urandom(300_000))
    (share / "empty").write_bytes(b"")
    (share / "a" / "b" / "naïve 名前.txt").write_text("héllo\n", encoding="utf-8")
    tool = share / "a" / "run.sh"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    return share


def old_create(path: Path) -> bytes:
    """The torrent obt made before it chose its files itself (libtorrent's own walk)."""
    creator = lt.create_torrent(lt.list_files(str(path)))
    lt.set_piece_hashes(creator, str(path.parent))
    entry = creator.generate()
    for key in (b"created by", b"creation date", b"comment"):
        entry.pop(key, None)
    return lt.bencode(entry)


def test_plain_folder_info_hash_is_unchanged(tmp_path):
    share = tree(tmp_path)
    before = lt.torrent_info(old_create(share)).info_hashes()
    meta = create(share)
    assert meta.data == old_create(share)
    assert meta.info_hashes == (before.v1.to_bytes(), before.v2.to_bytes()[:20])
    assert {f.path for f in meta.files} == {
        "share/big.bin", "share/empty", "share/a/b/naïve 名前.txt", "share/a/run.sh"}


def test_single_file_info_hash_is_unchanged(tmp_path):
    share = tree(tmp_path)
    one = share / "big.bin"
    assert create(one).data == old_create(one)


def test_symlink_out_of_the_folder_is_refused_by_name(tmp_path):
    share = tree(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("key")
    (share / "a" / "innocent").symlink_to(secret)
    with pytest.raises(BadPath) as caught:
        create(share)
    assert str(share / "a" / "innocent") in caught.value.message
    assert str(secret) in caught.value.message
    assert "symbolic link" in caught.value.message and caught.value.hint
    with pytest.raises(BadPath):
        check_shareable(share)  # the CLI's early check refuses it as well


def test_symlinks_inside_the_folder_and_to_folders_are_refused(tmp_path):
    share = tree(tmp_path)
    (share / "alias").symlink_to(share / "big.bin")
    with pytest.raises(BadPath, match="alias"):
        select(share)
    (share / "alias").unlink()
    (share / "etc").symlink_to("/etc", target_is_directory=True)
    with pytest.raises(BadPath, match="etc"):
        select(share)


def test_special_file_is_refused(tmp_path):
    share = tree(tmp_path)
    os.mkfifo(share / "pipe")
    with pytest.raises(BadPath, match="pipe"):
        select(share)


def test_the_shared_path_itself_may_be_a_link(tmp_path):
    share = tree(tmp_path)
    (tmp_path / "link").symlink_to(share, target_is_directory=True)
    assert select(tmp_path / "link").root == share.resolve()


def test_node_home_inside_the_folder_is_refused(tmp_path):
    share = tree(tmp_path)
    home = share / "a" / "obt-home"
    home.mkdir()
    (home / "state.sqlite3").write_bytes(b"keys")
    with pytest.raises(BadPath, match="holds obt's own state folder") as caught:
        create(share, forbidden=(home,))
    assert str(home) in caught.value.message
    # and what lies inside the home, or the home itself
    with pytest.raises(BadPath, match="inside obt's own state folder"):
        select(home / "state.sqlite3", forbidden=(home,))
    with pytest.raises(BadPath, match="inside obt's own state folder"):
        select(home, forbidden=(home,))
    # a hidden home is refused too, even though it would be left out
    with pytest.raises(BadPath):
        select(tmp_path, forbidden=(tmp_path / ".local" / "obt",))


def test_forbidden_folder_is_compared_resolved(tmp_path):
    share = tree(tmp_path)
    (tmp_path / "home-link").symlink_to(share / "a", target_is_directory=True)
    with pytest.raises(BadPath):
        select(share, forbidden=(tmp_path / "home-link",))
    assert select(share, forbidden=(tmp_path / "elsewhere",)).files


def test_dotfiles_are_left_out_by_default_and_counted(tmp_path):
    share = tree(tmp_path)
    plain = create(share).data
    (share / ".ssh").mkdir()
    (share / ".ssh" / "id_ed25519").write_text("private")
    (share / ".ssh" / "link").symlink_to("/etc/passwd")  # not walked, so not refused
    (share / "a" / ".env").write_text("TOKEN=1")
    made = create_share(share)
    assert made.hidden_skipped == 2  # .ssh (once, whatever it holds) and a/.env
    assert made.meta.data == plain
    assert not any("/." in f.path for f in made.meta.files)


def test_dotfiles_are_included_when_asked(tmp_path):
    share = tree(tmp_path)
    (share / ".config").mkdir()
    (share / ".config" / "x").write_text("x")
    (share / "a" / ".env").write_text("TOKEN=1")
    made = create_share(share, include_hidden=True)
    assert made.hidden_skipped == 0
    paths = {f.path for f in made.meta.files}
    assert {"share/.config/x", "share/a/.env"} <= paths
    assert made.meta.data == old_create(share)


def test_hidden_file_named_explicitly_is_shared(tmp_path):
    dot = tmp_path / ".notes"
    dot.write_text("mine")
    made = create_share(dot)
    assert made.meta.name == ".notes" and made.hidden_skipped == 0


def test_folder_of_only_dotfiles_says_so(tmp_path):
    share = tmp_path / "dots"
    share.mkdir()
    (share / ".bashrc").write_text("x")
    with pytest.raises(BadPath, match="no files to share") as caught:
        select(share)
    assert "--include-hidden" in caught.value.hint
    assert select(share, include_hidden=True).files[0].path == "dots/.bashrc"


def test_missing_path(tmp_path):
    with pytest.raises(BadPath, match="no such file"):
        select(tmp_path / "nope")
