"""Issue 2.6 on the private Tor network, through the CLI: a share holding identifying
metadata is refused to a script without --scrub or --keep-metadata (exit 2); with --scrub
the download on another node gets the cleaned copies (read back with exiftool, an
independent reader), the originals stay byte for byte as they were, and sharing the same
original again prints the same URI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from onionshare_bt.scan import scan_path
from tests.unit.test_scan_formats import PLANTED, exiftool, make_samples, planted_in


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def album(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scan") / "field trip"
    make_samples(folder)
    (folder / "notes.txt").write_text("nothing to hide here\n")
    return folder, digests(folder)


def test_a_script_without_either_flag_shares_nothing_and_exits_2(node_a, album):
    folder, before = album
    shares = len(node_a.json("list"))
    proc = node_a.run("share", str(folder))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "hold identifying metadata" in proc.stderr and "nothing was shared" in proc.stderr
    assert "--scrub" in proc.stderr and "--keep-metadata" in proc.stderr
    assert "location    EXIF:GPS position: 52.37000, 4.89111" in proc.stderr
    assert len(node_a.json("list")) == shares
    assert digests(folder) == before


def test_the_download_on_another_node_gets_the_cleaned_copies(node_a, node_b, album,
                                                              tmp_path):
    folder, before = album
    info = node_a.json("share", str(folder), "--scrub")
    flagged = {f["path"]: f for f in info["metadata"]["files"]}
    assert set(flagged) == {f"field trip/{n}" for n in ("beach.jpg", "diagram.png",
                                                         "plans.pdf", "letter.docx",
                                                         "memo.mp3")}
    assert info["metadata"]["files"][0]["path"] == "field trip/beach.jpg"  # GPS: riskiest
    assert info["metadata"]["files"][0]["fields"][0]["risk"] == "location"
    assert info["metadata"]["scrubbed"]["copied"] == ["field trip/notes.txt"]

    out = tmp_path / "out"
    proc = node_b.run("get", info["uri"], "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    got = Path(json.loads(proc.stdout)["path"])
    assert got == out / "field trip"
    assert sorted(digests(got)) == sorted(before)
    assert digests(got)["notes.txt"] == before["notes.txt"]
    for name in ("beach.jpg", "diagram.png", "plans.pdf", "letter.docx", "memo.mp3"):
        assert digests(got)[name] != before[name]
        seen = exiftool(got / name)
        assert planted_in(seen) == [], (name, seen)
        assert planted_in(exiftool(folder / name)), name  # the original still has it
    assert scan_path(got)[1].flagged == ()
    assert digests(folder) == before  # the originals are untouched

    again = node_a.run("share", str(folder), "--scrub")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == info["uri"]
    staging = [p for p in (node_a.home / "staging").iterdir()]
    assert len(staging) == 1 and digests(staging[0] / "field trip") == digests(got)
    assert not any(p in (staging[0] / "field trip" / "beach.jpg").read_bytes().decode(
        "latin-1") for p in PLANTED)
