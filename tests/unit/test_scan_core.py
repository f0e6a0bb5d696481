"""The pure core of the metadata scan: risk classes, ordering, the report and its rendering."""

from __future__ import annotations

import pytest

from onionshare_bt.scan.core import (FileReport, Report, Risk, finding, render, risk_of,
                                     shorten, sorted_findings)


@pytest.mark.parametrize("field,risk", [
    ("EXIF:GPS position", Risk.LOCATION), ("XMP:photoshop:City", Risk.LOCATION),
    ("XMP:photoshop:State", Risk.LOCATION), ("ID3:TXXX:location", Risk.LOCATION),
    ("EXIF:Artist", Risk.PERSON), ("XMP:dc:creator", Risk.PERSON),
    ("OOXML core:cp:lastModifiedBy", Risk.PERSON), ("OOXML app:Company", Risk.PERSON),
    ("EXIF:CameraOwnerName", Risk.PERSON), ("PDF Info:Author", Risk.PERSON),
    ("EXIF:BodySerialNumber", Risk.DEVICE), ("EXIF:Model", Risk.DEVICE),
    ("EXIF:LensSerialNumber", Risk.DEVICE), ("ODF settings:PrinterName", Risk.DEVICE),
    ("XMP:xmpMM:DocumentID", Risk.IDENTIFIER), ("EXIF:ImageUniqueID", Risk.IDENTIFIER),
    ("XMP:xmp:CreatorTool", Risk.SOFTWARE), ("PDF Info:Producer", Risk.SOFTWARE),
    ("ODF meta:meta:generator", Risk.SOFTWARE), ("ID3:TENC (Encoder)", Risk.SOFTWARE),
    ("EXIF:DateTimeOriginal", Risk.TIME), ("OOXML core:dcterms:modified", Risk.TIME),
    ("PNG:Title", Risk.OTHER), ("JPEG:comment", Risk.OTHER),
])
def test_fields_are_classed_by_name(field, risk):
    assert risk_of(field) is risk


def test_a_user_folder_or_an_email_names_a_person_whatever_the_field():
    assert risk_of("PDF Info:Title", "C:\\Users\\alice\\Desktop\\x.docx") is Risk.PERSON
    assert risk_of("PDF Info:Title", "/home/alice/plans.odt") is Risk.PERSON
    assert risk_of("JPEG:comment", "mail me: alice@example.org") is Risk.PERSON
    assert risk_of("EXIF:GPS position", "alice@example.org") is Risk.LOCATION  # not lowered
    assert risk_of("PNG:Title", "holiday") is Risk.OTHER


def test_values_are_shown_short_on_one_line_and_without_control_characters():
    assert shorten("a\nb\x1b[2Jc\u202e") == "a b[2Jc"
    assert len(shorten("x" * 500)) == 80 and shorten("x" * 500).endswith("…")
    assert shorten(b"bytes") == "bytes" and shorten(["a", "b"]) == "a; b"


def _report():
    a = FileReport("share/a.png", 10, "PNG",
                   sorted_findings([finding("PNG:Software", "GIMP"),
                                    finding("PNG:Author", "Alice")]))
    b = FileReport("share/b.jpg", 20, "JPEG",
                   sorted_findings([finding("EXIF:GPS position", "1.0, 2.0", Risk.LOCATION)]))
    c = FileReport("share/c.txt", 5, None)
    d = FileReport("share/d.mov", 7, None, note="obt cannot read .mov files for metadata")
    return Report((a, b, c, d), hidden=("share/.git",))


def test_files_and_fields_come_riskiest_first():
    report = _report()
    assert [f.path for f in report.flagged] == ["share/b.jpg", "share/a.png"]
    assert [f.field for f in report.flagged[1].findings] == ["PNG:Author", "PNG:Software"]
    assert report.size == 42 and [f.path for f in report.unchecked] == ["share/d.mov"]


def test_the_json_form_names_every_field_with_its_risk():
    data = _report().as_dict()
    assert data["files"][0] == {"path": "share/b.jpg", "format": "JPEG", "fields": [
        {"field": "EXIF:GPS position", "value": "1.0, 2.0", "risk": "location"}]}
    assert data["files"][1]["fields"][0]["risk"] == "person"
    assert data["unchecked"] == [{"path": "share/d.mov",
                                  "reason": "obt cannot read .mov files for metadata"}]
    assert data["hidden_skipped"] == ["share/.git"]
    assert (data["count"], data["size"]) == (4, 42)


def test_the_rendering_lists_findings_unchecked_files_hidden_files_and_totals():
    lines = render(_report())
    text = "\n".join(lines)
    assert lines[0] == "identifying metadata in 2 of 4 file(s), riskiest first:"
    assert text.index("share/b.jpg") < text.index("share/a.png")
    assert "    location    EXIF:GPS position: 1.0, 2.0" in lines
    assert "    person      PNG:Author: Alice" in lines
    assert "not checked for metadata: 1 file(s)" in lines
    assert "left out (names starting with '.'): share/.git" in lines
    assert lines[-1] == "to share: 4 file(s), 42 B"


def test_a_clean_share_renders_only_its_totals():
    assert render(Report((FileReport("x", 2_500_000, None),))) == ["to share: 1 file(s), 2.5 MB"]
