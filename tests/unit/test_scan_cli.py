"""``obt share`` and metadata, through the real CLI against a fake node: what was found is
listed before anything is shared, a script without --scrub or --keep-metadata gets exit
status 2 and a hint naming both, a terminal is asked (y/k/n), --scrub reaches the node,
--json carries the findings, and a clean share goes on without asking."""

from __future__ import annotations

import json

import pytest

from onionshare_bt.cli import metadata
from tests.unit.test_relay_notice import FakeNode, obt
from tests.unit.test_relay_notice import home  # noqa: F401  (fixture)
from tests.unit.test_scan_formats import make_jpeg, make_pdf

ONION = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad"


def share_reply(args):
    reply = {"uri": f"http://{ONION}.onion/private/tok", "infohash": "ab" * 20,
             "name": "album", "size": 1, "piece_length": 16384, "files": [], "onions": [],
             "hidden_skipped": 0}
    if args.get("scrub"):
        reply["scrubbed"] = {"cleaned": ["album/beach.jpg", "album/plans.pdf"],
                             "copied": ["album/notes.txt", "album/clip.mov"]}
    return reply


@pytest.fixture
def node(home):  # noqa: F811
    fake = FakeNode(home, {"share": share_reply})
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def album(tmp_path):
    folder = tmp_path / "album"
    folder.mkdir()
    make_jpeg(folder / "beach.jpg")
    make_pdf(folder / "plans.pdf")
    (folder / "notes.txt").write_text("hello\n")
    (folder / "clip.mov").write_bytes(b"\x00\x00\x00\x14ftypqt  ")
    (folder / ".DS_Store").write_bytes(b"x")
    return folder


@pytest.fixture
def plain(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "b.bin").write_bytes(bytes(2000))
    return folder


def shares(node):
    return [args for op, args in node.calls if op == "share"]


def test_a_script_gets_exit_2_and_a_hint_naming_both_flags_and_nothing_is_shared(node, album):
    result = obt("share", str(album))
    assert result.exit_code == 2
    assert result.stdout == ""
    err = result.stderr
    assert "obt: error: 2 file(s) hold identifying metadata (listed above); nothing was " \
           "shared" in err
    assert "--scrub" in err and "--keep-metadata" in err and err.count("obt: hint:") == 1
    assert shares(node) == []
    # what was found came first, riskiest first: the photo's position before the PDF's author
    assert err.index("album/beach.jpg") < err.index("album/plans.pdf") < err.index("error")
    assert "obt:     location    EXIF:GPS position: 52.37000, 4.89111" in err
    assert "obt:     device      EXIF:BodySerialNumber: SN8812734401" in err
    assert "obt:     person      PDF Info:Author: Alice Example" in err
    assert "album/clip.mov: obt cannot read .mov files for metadata" in err
    assert "left out (names starting with '.'): album/.DS_Store" in err
    assert "to share: 4 file(s)" in err


def test_scrub_is_sent_to_the_node_and_said(node, album):
    result = obt("share", str(album), "--scrub")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"http://{ONION}.onion/private/tok"
    assert shares(node) == [{"path": str(album), "onions": None, "scrub": True}]
    assert "shared cleaned copies: 2 file(s) cleaned, the originals untouched" in result.stderr
    assert "copied as they are (obt cannot clean them): 1 file(s), album/clip.mov" \
        in result.stderr


def test_keep_metadata_shares_as_is_and_says_so(node, album):
    result = obt("share", str(album), "--keep-metadata")
    assert result.exit_code == 0, result.stderr
    assert shares(node) == [{"path": str(album), "onions": None}]
    assert "metadata included (--keep-metadata)" in result.stderr


def test_both_flags_are_refused(node, album):
    result = obt("share", str(album), "--scrub", "--keep-metadata")
    assert result.exit_code == 2 and "exclude each other" in result.stderr
    assert shares(node) == []


def test_json_reports_every_finding_with_its_risk(node, album):
    result = obt("share", str(album), "--scrub", "--json")
    assert result.exit_code == 0, result.stderr
    meta = json.loads(result.stdout)["metadata"]
    assert [f["path"] for f in meta["files"]] == ["album/beach.jpg", "album/plans.pdf"]
    fields = {f["field"]: f for f in meta["files"][0]["fields"]}
    assert fields["EXIF:GPS position"]["risk"] == "location"
    assert fields["EXIF:BodySerialNumber"] == {"field": "EXIF:BodySerialNumber",
                                               "value": "SN8812734401", "risk": "device"}
    assert meta["files"][0]["fields"][0]["risk"] == "location"
    assert meta["unchecked"] == [{"path": "album/clip.mov",
                                  "reason": "obt cannot read .mov files for metadata"}]
    assert meta["hidden_skipped"] == ["album/.DS_Store"]
    assert meta["count"] == 4 and meta["size"] > 0
    assert meta["scrubbed"]["cleaned"] == ["album/beach.jpg", "album/plans.pdf"]


def test_a_clean_share_goes_on_without_asking(node, plain, monkeypatch):
    monkeypatch.setattr(metadata, "interactive", lambda: pytest.fail("asked"))
    result = obt("share", str(plain), "--json")
    assert result.exit_code == 0, result.stderr
    assert shares(node) == [{"path": str(plain), "onions": None}]
    assert "identifying metadata" not in result.stderr
    assert "obt: to share: 2 file(s), 2.0 kB" in result.stderr
    meta = json.loads(result.stdout)["metadata"]
    assert meta["files"] == [] and meta["scrubbed"] is None


@pytest.mark.parametrize("answer,sent", [("y", {"scrub": True}), ("k", {})])
def test_a_terminal_is_asked(node, album, monkeypatch, answer, sent):
    monkeypatch.setattr(metadata, "interactive", lambda: True)
    result = obt_input(f"{answer}\n", "share", str(album))
    assert result.exit_code == 0, result.stderr
    assert "share cleaned copies (y), share as they are (k), or stop (n)?" in result.stderr
    assert shares(node) == [{"path": str(album), "onions": None, **sent}]


@pytest.mark.parametrize("answer", ["n\n", ""])  # "no", or the end of input
def test_no_answer_or_no_stops_with_nothing_shared(node, album, monkeypatch, answer):
    monkeypatch.setattr(metadata, "interactive", lambda: True)
    result = obt_input(answer, "share", str(album))
    assert result.exit_code == 2 and "nothing was shared" in result.stderr
    assert shares(node) == []


def obt_input(text: str, *args: str):
    from click.testing import CliRunner

    from onionshare_bt.cli import main

    return CliRunner().invoke(main, list(args), input=text, catch_exceptions=False)


def test_a_real_terminal_is_asked_and_y_shares_cleaned_copies(node, album, home):  # noqa: F811
    """The installed CLI in a pseudo-terminal, as a person runs it."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    env = {**os.environ, "OBT_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "80"}
    proc = subprocess.Popen([sys.executable, "-m", "onionshare_bt", "share", str(album)],
                            stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    seen, answered = b"", False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"or stop (n)?" in seen:
                os.write(master, b"y\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        assert proc.wait(30) == 0, seen.decode(errors="replace")
    finally:
        proc.kill() if proc.poll() is None else None
        os.close(master)
    text = seen.decode(errors="replace")
    assert answered and "EXIF:GPS position" in text
    assert text.index("EXIF:GPS position") < text.index("or stop (n)?")
    assert f"http://{ONION}.onion/private/tok" in text
    assert shares(node) == [{"path": str(album), "onions": None, "scrub": True}]
