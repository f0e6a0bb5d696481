"""A share restored after a restart is served only if its files are still what was shared."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from onionshare_bt.engine.metainfo import FileEntry
from onionshare_bt.errors import BadPath
from onionshare_bt.torrents.shares import _check_unchanged_paths


def _share(tmp_path):
    folder = tmp_path / "shared" / "album"
    (folder / "disc").mkdir(parents=True)
    (folder / "disc" / "a.txt").write_text("a")
    (folder / "b.txt").write_text("b")
    row = SimpleNamespace(save_path=str(tmp_path / "shared"))
    meta = SimpleNamespace(files=(FileEntry("album/disc/a.txt", 1), FileEntry("album/b.txt", 1)))
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "secret").write_text("k")
    return folder, row, meta, home


def test_an_unchanged_share_passes(tmp_path):
    folder, row, meta, home = _share(tmp_path)
    _check_unchanged_paths(row, meta, home)


def test_a_file_swapped_for_a_link_to_the_keys_is_refused(tmp_path):
    folder, row, meta, home = _share(tmp_path)
    (folder / "b.txt").unlink()
    (folder / "b.txt").symlink_to(home / "keys" / "secret")
    with pytest.raises(BadPath, match="b.txt became a symbolic link"):
        _check_unchanged_paths(row, meta, home)


def test_a_folder_swapped_for_a_link_is_refused(tmp_path):
    folder, row, meta, home = _share(tmp_path)
    (folder / "disc" / "a.txt").unlink()
    (folder / "disc").rmdir()
    (folder / "disc").symlink_to(home / "keys")
    with pytest.raises(BadPath, match="disc became a symbolic link"):
        _check_unchanged_paths(row, meta, home)
