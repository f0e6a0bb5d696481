"""Staging cleaned copies in the node's home: where they go, their modes, what is copied,
that the originals are only read, that the same input gives the same copies, and that a
copy still holding metadata is never kept."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from onionshare_bt.errors import BadPath, ScrubFailed
from onionshare_bt.scan import is_staged, scan_path, stage_scrubbed
from onionshare_bt.scan import stage as stage_mod
from tests.unit.test_scan_formats import exiftool, make_samples, planted_in


def digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def share(tmp_path):
    folder = tmp_path / "trip"
    make_samples(folder / "media")
    (folder / "notes.txt").write_text("plain text\n")
    (folder / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(folder / "run.sh", 0o755)
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("[user]\nname = Alice\n")
    (folder / "media" / ".thumbs.db").write_bytes(b"x")
    return folder


def test_the_scan_covers_exactly_what_the_share_publishes(share):
    selection, report = scan_path(share)
    assert [f.path for f in report.files] == [f.path for f in selection.files]
    assert len(report.files) == 7 and len(report.flagged) == 5
    assert report.hidden == ("trip/.git", "trip/media/.thumbs.db")
    assert scan_path(share, include_hidden=True)[1].hidden == ()


def test_cleaned_copies_land_in_a_private_staging_folder_and_carry_no_metadata(share, tmp_path):
    home = tmp_path / "home"
    before = digests(share)
    staged = stage_scrubbed(share, home)
    assert digests(share) == before  # the originals are only read
    assert staged.folder.parent == home / "staging" and staged.root == staged.folder / "trip"
    for folder in (home / "staging", staged.folder, staged.root, staged.root / "media"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in staged.root.rglob("*")
             if p.is_file()}
    assert modes.pop("run.sh") == 0o700 and set(modes.values()) == {0o600}
    assert sorted(digests(staged.root)) == ["media/beach.jpg", "media/diagram.png",
                                            "media/letter.docx", "media/memo.mp3",
                                            "media/plans.pdf", "notes.txt", "run.sh"]
    assert sorted(staged.cleaned) == sorted(f"trip/media/{n}" for n in (
        "beach.jpg", "diagram.png", "letter.docx", "memo.mp3", "plans.pdf"))
    assert sorted(staged.copied) == ["trip/notes.txt", "trip/run.sh"]
    assert digests(staged.root)["notes.txt"] == before["notes.txt"]
    assert scan_path(staged.root)[1].flagged == ()
    for path in (staged.root / "media").iterdir():
        assert planted_in(exiftool(path)) == [], path
    assert is_staged(staged.root, home) and not is_staged(share, home)
    assert not is_staged(home / "staging", home)


def test_the_same_original_gives_the_same_copies(share, tmp_path):
    home = tmp_path / "home"
    one, two = stage_scrubbed(share, home), stage_scrubbed(share, home)
    assert one.folder != two.folder
    assert digests(one.root) == digests(two.root)


def test_a_single_file_is_staged_under_its_own_name(share, tmp_path):
    staged = stage_scrubbed(share / "media" / "beach.jpg", tmp_path / "home")
    assert staged.root == staged.folder / "beach.jpg" and staged.root.is_file()
    assert staged.cleaned == ("beach.jpg",)


def test_the_home_is_never_staged_from(tmp_path):
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "k").write_text("secret")
    with pytest.raises(BadPath, match="own state folder"):
        stage_scrubbed(home / "keys", home)


def test_a_copy_still_holding_metadata_is_deleted_and_nothing_is_shared(share, tmp_path,
                                                                       monkeypatch):
    home = tmp_path / "home"

    def copy_only(src, dst):
        dst.write_bytes(src.read_bytes())
        return "JPEG"

    monkeypatch.setattr(stage_mod, "clean_file", copy_only)
    with pytest.raises(ScrubFailed, match="still there after cleaning: .*beach.jpg"):
        stage_scrubbed(share, home)
    assert list((home / "staging").iterdir()) == []


def test_a_file_obt_could_not_read_is_copied_as_it_is(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    staged = stage_scrubbed(folder, tmp_path / "home")
    assert staged.copied == ("f/broken.pdf",)
    assert (staged.root / "broken.pdf").read_bytes() == b"%PDF-1.4 not really"
