"""The metadata scan on real files made here, one per format: every planted field is found,
cleaning removes it (checked by the scan and by exiftool, an independent reader), cleaning
is deterministic, and the picture, pages and sound survive it."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

NAME = "Alice Example"
SERIAL = "SN8812734401"
PLANTED = (NAME, SERIAL, "Example Corp", "alice@example.org", "52.37", "Pine Street")


# -- sample files ---------------------------------------------------------------------------
def make_jpeg(path: Path, orientation: int = 1) -> Path:
    """A JPEG with GPS, an artist, a camera serial, XMP, a comment and a thumbnail."""
    from PIL import ExifTags, Image

    im = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x013B] = "Canon", "EOS 5D", NAME
    exif[0x0131] = "Firmware 1.2"
    if orientation != 1:
        exif[0x0112] = orientation
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[0xA431], sub[0x9003], sub[0x829A] = SERIAL, "2024:01:02 03:04:05", 0.01
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(
        {1: "N", 2: (52.0, 22.0, 12.0), 3: "E", 4: (4.0, 53.0, 28.0)})
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           b'02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/'
           b'elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" '
           b'photoshop:City="Pine Street"><dc:creator><rdf:Seq><rdf:li>' + NAME.encode()
           + b'</rdf:li></rdf:Seq></dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>')
    im.save(path, "JPEG", exif=exif, xmp=xmp, comment=b"shot by alice@example.org",
            quality=90)
    return path


def make_png(path: Path) -> Path:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", NAME)
    info.add_text("Comment", "made at Example Corp", zip=True)
    info.add_itxt("Description", "for alice@example.org")
    Image.new("RGBA", (32, 32), (10, 200, 10, 128)).save(path, "PNG", pnginfo=info)
    return path


def make_pdf(path: Path) -> Path:
    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(200, 200))
    with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as meta:
        meta["dc:creator"] = [NAME]
    pdf.docinfo["/Author"] = NAME
    pdf.docinfo["/Creator"] = "Writer for Example Corp"
    pdf.docinfo["/Title"] = "/home/alice/secret plans.odt"
    pdf.save(path)
    return path


def make_docx(path: Path) -> Path:
    ct = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.'
          'openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType='
          '"application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml"'
          ' ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType='
          '"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
          '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-'
          'package.core-properties+xml"/><Override PartName="/docProps/app.xml" ContentType="'
          'application/vnd.openxmlformats-officedocument.extended-properties+xml"/></Types>')
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http:'
            '//schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/><Relationship Id="rId2" Type="http://'
            'schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" '
            'Target="docProps/core.xml"/><Relationship Id="rId3" Type="http://schemas.'
            'openxmlformats.org/officeDocument/2006/relationships/extended-properties" '
            'Target="docProps/app.xml"/></Relationships>')
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    doc = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{w}">'
           '<w:body><w:p w:rsidR="00AB12CD"><w:ins w:id="1" w:author="' + NAME + '" w:date="'
           '2024-01-02T03:04:05Z"><w:r><w:t>Hello</w:t></w:r></w:ins></w:p></w:body>'
           '</w:document>')
    core = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><cp:coreProperties xmlns:cp'
            '="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/'
            'terms/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:creator>'
            + NAME + '</dc:creator><cp:lastModifiedBy>' + NAME + '</cp:lastModifiedBy>'
            '<dcterms:created xsi:type="dcterms:W3CDTF">2024-01-02T03:04:05Z</dcterms:created>'
            '</cp:coreProperties>')
    app = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Properties xmlns="http://'
           'schemas.openxmlformats.org/officeDocument/2006/extended-properties"><Application>'
           'Microsoft Office Word</Application><Company>Example Corp</Company><Pages>1</Pages>'
           '</Properties>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("[Content_Types].xml", ct), ("_rels/.rels", rels),
                           ("word/document.xml", doc), ("docProps/core.xml", core),
                           ("docProps/app.xml", app)):
            zf.writestr(name, text)
    return path


def make_odt(path: Path) -> Path:
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    meta = ('<?xml version="1.0" encoding="UTF-8"?><office:document-meta xmlns:office="'
            + office + '" xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" office:version="1.3"><office:meta>'
            '<meta:initial-creator>' + NAME + '</meta:initial-creator><meta:generator>'
            'LibreOffice/7.4</meta:generator><meta:document-statistic meta:page-count="1"/>'
            '</office:meta></office:document-meta>')
    content = ('<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="'
               + office + '" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
               'xmlns:dc="http://purl.org/dc/elements/1.1/" office:version="1.3"><office:body>'
               '<office:text><text:p>Hi<office:annotation><dc:creator>' + NAME
               + '</dc:creator><text:p>note</text:p></office:annotation></text:p>'
               '</office:text></office:body></office:document-content>')
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        zf.writestr("meta.xml", meta, zipfile.ZIP_DEFLATED)
        zf.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return path


def _mpeg_frames(count: int = 20) -> bytes:
    """Silent MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz): 417 bytes each."""
    header = bytes([0xFF, 0xFB, 0x90, 0x64])
    return (header + bytes(413)) * count


def make_mp3(path: Path) -> Path:
    from mutagen.id3 import APIC, COMM, ID3, TENC, TIT2, TPE1, TXXX

    path.write_bytes(_mpeg_frames())
    tags = ID3()
    tags.add(TPE1(encoding=3, text=[NAME]))
    tags.add(TIT2(encoding=3, text=["voice memo"]))
    tags.add(TENC(encoding=3, text=["Example Corp recorder"]))
    tags.add(COMM(encoding=3, lang="eng", desc="", text=["recorded on " + SERIAL]))
    tags.add(TXXX(encoding=3, desc="location", text=["Pine Street"]))
    tags.add(APIC(encoding=3, mime="image/png", type=3, desc="cover", data=b"\x89PNG fake"))
    tags.save(path)
    return path


def make_samples(folder: Path) -> dict[str, Path]:
    """One file of each format, with planted metadata, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "jpeg": make_jpeg(folder / "beach.jpg"),
        "png": make_png(folder / "diagram.png"),
        "pdf": make_pdf(folder / "plans.pdf"),
        "docx": make_docx(folder / "letter.docx"),
        "mp3": make_mp3(folder / "memo.mp3"),
    }


def exiftool(path: Path) -> dict:
    """What exiftool (an independent reader) sees in ``path``; the file-system fields left
    out."""
    tool = shutil.which("exiftool")
    if tool is None:
        pytest.fail("exiftool is missing: scripts/setup.sh installs it "
                    "(apt-get install libimage-exiftool-perl)")
    proc = subprocess.run([tool, "-j", "-a", "-G1", "-u", "-ee", str(path)],
                          capture_output=True, text=True, timeout=60)
    data = json.loads(proc.stdout)[0]
    return {k: v for k, v in data.items()
            if not k.startswith(("System:", "ExifTool:", "SourceFile"))}


def planted_in(data) -> list[str]:
    text = json.dumps(data, ensure_ascii=False)
    return [p for p in PLANTED if p in text]


# -- the tests ------------------------------------------------------------------------------
from onionshare_bt.scan.core import Risk  # noqa: E402
from onionshare_bt.scan.formats import clean_file, scan_file  # noqa: E402

EXPECTED = {  # format, and (risk, a field name's tail, a value's part) that must be found
    "jpeg": ("JPEG", [(Risk.LOCATION, "GPS position", "52.37"),
                      (Risk.LOCATION, "photoshop:City", "Pine Street"),
                      (Risk.PERSON, "Artist", NAME), (Risk.PERSON, "dc:creator", NAME),
                      (Risk.PERSON, "comment", "alice@example.org"),
                      (Risk.DEVICE, "BodySerialNumber", SERIAL), (Risk.DEVICE, "Model", "EOS"),
                      (Risk.SOFTWARE, "Software", "Firmware"),
                      (Risk.TIME, "DateTimeOriginal", "2024")]),
    "png": ("PNG", [(Risk.PERSON, "Author", NAME),
                    (Risk.PERSON, "Description", "alice@example.org"),
                    (Risk.OTHER, "Comment", "Example Corp")]),
    "pdf": ("PDF", [(Risk.PERSON, "Info:Author", NAME), (Risk.PERSON, "dc:creator", NAME),
                    (Risk.PERSON, "Info:Title", "/home/alice"),
                    (Risk.SOFTWARE, "Info:Creator", "Writer")]),
    "docx": ("OOXML", [(Risk.PERSON, "dc:creator", NAME),
                       (Risk.PERSON, "lastModifiedBy", NAME),
                       (Risk.PERSON, "Company", "Example Corp"),
                       (Risk.PERSON, "changes:author", NAME),
                       (Risk.IDENTIFIER, "rsid", "1 revision"),
                       (Risk.SOFTWARE, "Application", "Word"),
                       (Risk.TIME, "dcterms:created", "2024")]),
    "mp3": ("MP3", [(Risk.PERSON, "TPE1 (Lead Artist/Performer/Soloist/Group)", NAME),
                    (Risk.LOCATION, "TXXX:location", "Pine Street"),
                    (Risk.SOFTWARE, "TENC (Encoder)", "Example Corp"),
                    (Risk.OTHER, "APIC:cover (Attached (or linked) Picture.)", "cover art"),
                    (Risk.OTHER, "COMM::eng (User comment.)", SERIAL)]),
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return make_samples(tmp_path_factory.mktemp("samples"))


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_planted_field_is_found_with_its_risk(samples, kind):
    path = samples[kind]
    report = scan_file(path, path.name, path.stat().st_size)
    fmt, expected = EXPECTED[kind]
    assert report.format == fmt and report.note is None
    for risk, field, value in expected:
        assert any(f.risk is risk and f.field.endswith(field) and value in f.value
                   for f in report.findings), (risk, field, report.findings)
    risks = [f.risk for f in report.findings]
    assert risks == sorted(risks)  # riskiest first
    assert planted_in(exiftool(path))  # the independent reader sees it too


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_a_cleaned_copy_carries_none_of_it_and_the_original_is_untouched(samples, kind,
                                                                        tmp_path):
    path = samples[kind]
    before = path.read_bytes()
    out, again = tmp_path / f"a-{path.name}", tmp_path / f"b-{path.name}"
    assert clean_file(path, out) is not None
    clean_file(path, again)
    assert path.read_bytes() == before
    assert out.read_bytes() == again.read_bytes()  # deterministic
    assert scan_file(out, out.name, out.stat().st_size).findings == ()
    seen = exiftool(out)
    assert planted_in(seen) == [], seen
    assert not [k for k in seen if "GPS" in k or "Serial" in k or "Author" in k
                or "Creator" in k or "Artist" in k], seen


def test_a_cleaned_jpeg_has_the_same_pixels_and_keeps_its_orientation(tmp_path):
    from PIL import Image

    path = make_jpeg(tmp_path / "turned.jpg", orientation=6)
    out = tmp_path / "clean.jpg"
    clean_file(path, out)
    with Image.open(path) as a, Image.open(out) as b:
        assert a.tobytes() == b.tobytes() and a.size == b.size
        assert dict(b.getexif()) == {0x0112: 6}
    assert exiftool(out).get("IFD0:Orientation") == "Rotate 90 CW"


def test_a_cleaned_png_draws_the_same_picture(samples, tmp_path):
    from PIL import Image

    out = tmp_path / "clean.png"
    clean_file(samples["png"], out)
    with Image.open(samples["png"]) as a, Image.open(out) as b:
        assert a.tobytes() == b.tobytes() and a.mode == b.mode


def test_a_cleaned_pdf_keeps_its_pages_and_a_cleaned_docx_its_text(samples, tmp_path):
    import pikepdf

    out = tmp_path / "clean.pdf"
    clean_file(samples["pdf"], out)
    with pikepdf.open(out) as pdf:
        assert len(pdf.pages) == 1 and "/Info" not in pdf.trailer
    out = tmp_path / "clean.docx"
    clean_file(samples["docx"], out)
    with zipfile.ZipFile(samples["docx"]) as a, zipfile.ZipFile(out) as b:
        assert a.namelist() == b.namelist()
        assert b"Hello" in b.read("word/document.xml")
        assert {i.date_time for i in b.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_an_odt_is_read_and_cleaned(tmp_path):
    path = make_odt(tmp_path / "minutes.odt")
    report = scan_file(path, path.name, 1)
    assert report.format == "ODF"
    fields = {f.field: f for f in report.findings}
    assert fields["ODF meta:meta:initial-creator"].risk is Risk.PERSON
    assert fields["ODF meta:meta:generator"].risk is Risk.SOFTWARE
    assert fields["ODF comments and changes:creator"].value == NAME
    out = tmp_path / "clean.odt"
    clean_file(path, out)
    assert scan_file(out, out.name, 1).findings == ()
    with zipfile.ZipFile(out) as zf:
        first = zf.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
    assert planted_in(exiftool(out)) == []


def test_a_webp_is_read_and_cleaned(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x013B] = NAME
    path = tmp_path / "pic.webp"
    Image.new("RGB", (16, 16), "blue").save(path, "WEBP", exif=exif, lossless=True)
    assert any(f.value == NAME for f in scan_file(path, path.name, 1).findings)
    out = tmp_path / "clean.webp"
    clean_file(path, out)
    assert scan_file(out, out.name, 1).findings == ()
    with Image.open(path) as a, Image.open(out) as b:
        assert a.tobytes() == b.tobytes()
    assert planted_in(exiftool(out)) == []


@pytest.mark.parametrize("name,data", [
    ("photo.jpg", b"jpg"), ("broken.jpg", b"\xff\xd8\xff\xe1\x00"), ("paper.pdf", b"%PDF-1.4 x"),
    ("letter.docx", b"PK\x03\x04junk"), ("song.mp3", b"ID3\x04\x00junk"),
    ("pic.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\xffIHDR"),
])
def test_a_malformed_file_is_not_checked_and_says_why_never_raises(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    report = scan_file(path, name, len(data))
    assert report.findings == ()
    if name != "photo.jpg":  # not a JPEG at all: a plain file, like any other
        assert report.note and "could not read it" in report.note


def test_formats_obt_cannot_read_are_reported_as_not_checked(tmp_path):
    (tmp_path / "clip.mov").write_bytes(b"\x00\x00\x00\x14ftypqt  ")
    (tmp_path / "notes.txt").write_text("hello")
    assert "cannot read .mov" in scan_file(tmp_path / "clip.mov", "clip.mov", 12).note
    assert scan_file(tmp_path / "notes.txt", "notes.txt", 5).note is None


def test_a_symlink_is_never_read(tmp_path, samples):
    link = tmp_path / "link.jpg"
    link.symlink_to(samples["jpeg"])
    with pytest.raises(OSError):
        scan_file(link, "link.jpg", 1)


def test_broken_metadata_inside_a_valid_file_is_reported_never_raised(tmp_path):
    import zlib as _zlib

    import pikepdf

    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.Root.Metadata = pdf.make_stream(b"<x:xmpmeta><not xml")
    pdf.save(tmp_path / "bad-xmp.pdf", fix_metadata_version=False)
    report = scan_file(tmp_path / "bad-xmp.pdf", "bad-xmp.pdf", 1)
    assert [f.value for f in report.findings] == ["unreadable metadata stream"]
    out = tmp_path / "clean.pdf"
    clean_file(tmp_path / "bad-xmp.pdf", out)
    assert scan_file(out, "clean.pdf", 1).findings == ()

    png = (tmp_path / "x.png")
    make_png(png)
    data = png.read_bytes()
    body = b"zTXtKey\x00\x00" + b"not zlib"
    bad = data[:33] + len(body[4:]).to_bytes(4, "big") + body + _zlib.crc32(body).to_bytes(
        4, "big") + data[33:]
    png.write_bytes(bad)
    report = scan_file(png, "x.png", len(bad))
    assert report.findings == () and "could not read it as PNG" in report.note

    jpg = tmp_path / "x.jpg"
    junk = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + bytes(10)
    jpg.write_bytes(b"\xff\xd8\xff\xe1" + (len(junk) + 2).to_bytes(2, "big") + junk
                    + b"\xff\xd9")
    scan_file(jpg, "x.jpg", 1)  # whatever Pillow makes of it: no exception
