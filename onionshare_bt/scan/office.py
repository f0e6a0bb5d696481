"""Office documents: OOXML (docx, xlsx, pptx) and ODF (odt, ods, odp), both zip archives.

Read with :mod:`zipfile` and lxml (no entities, no DTDs, no network). What is found and,
when cleaning, blanked or replaced:

- OOXML: ``docProps/core.xml`` (author, last editor, dates, title…), ``docProps/app.xml``
  (application and version, company, manager, template, editing time), ``docProps/custom.xml``
  (every custom property), the authors and initials of comments and tracked changes (and the
  account IDs Office records for them), and Word's revision-save IDs (``rsid``).
- ODF: ``meta.xml`` (generator, creators, dates, printed-by, editing time, template,
  user-defined fields), the authors of comments and tracked changes, and the printer named
  in ``settings.xml``.

A cleaned archive holds the same members in the same order, each with a fixed date and
mode and no zip comment, so that the same input always gives the same bytes.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

from lxml import etree

from .core import Finding, Risk, finding
from .xmp import parser

ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, etree.XMLSyntaxError, OSError,
          EOFError, ValueError, NotImplementedError, RuntimeError)
MAX_PART = 64 * 1024 * 1024
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

_APP_HARMLESS = {"Pages", "Words", "Characters", "Lines", "Paragraphs", "DocSecurity",
                 "ScaleCrop", "LinksUpToDate", "SharedDoc", "HyperlinksChanged", "Slides",
                 "Notes", "HiddenSlides", "MMClips", "CharactersWithSpaces", "HeadingPairs",
                 "TitlesOfParts", "PresentationFormat"}
#: attributes naming a person in comments, tracked changes and author lists
_NAME_ATTRS = {"author", "initials", "userId", "displayName", "providerId"}
#: elements whose ``name`` attribute names a person
_NAMED = {"cmAuthor", "author", "person"}
_OOXML_NAMES = re.compile(r"^(word|xl|ppt)/.*(document|comments|people|persons/|authors|"
                          r"commentAuthors|header|footer|footnotes|endnotes|threadedComments|"
                          r"settings).*\.xml$", re.IGNORECASE)
_ODF_NAMES = {"content.xml", "styles.xml"}
_DC = "http://purl.org/dc/elements/1.1/"
_META = "urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_CONFIG = "urn:oasis:names:tc:opendocument:xmlns:config:1.0"

_EMPTY_CORE = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               b'<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
               b'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/" '
               b'xmlns:dcterms="http://purl.org/dc/terms/" xmlns:xsi="http://www.w3.org/2001/'
               b'XMLSchema-instance"/>')
_EMPTY_APP = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
              b'<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
              b'extended-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/'
              b'2006/docPropsVTypes"/>')
_EMPTY_CUSTOM = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                 b'<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
                 b'custom-properties" xmlns:vt="http://schemas.openxmlformats.org/officeDocument/'
                 b'2006/docPropsVTypes"/>')


def kind_of(zf: zipfile.ZipFile) -> str | None:
    """``"OOXML"``, ``"ODF"``, or ``None`` for any other zip archive."""
    names = set(zf.namelist())
    if "mimetype" in names:
        mime = zf.read("mimetype")[:100]
        if mime.startswith(b"application/vnd.oasis.opendocument"):
            return "ODF"
    if "[Content_Types].xml" in names:
        return "OOXML"
    return None


def _read_xml(zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    if info.file_size > MAX_PART:
        raise ValueError(f"{info.filename} is too large to check ({info.file_size} bytes)")
    return etree.fromstring(zf.read(info), parser())


def _local(node) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _qualified(node) -> str:
    return f"{node.prefix}:{_local(node)}" if node.prefix else _local(node)


# -- scanning ---------------------------------------------------------------------------
def _children(root, where: str, skip=frozenset()) -> list[Finding]:
    out = []
    for child in root:
        if not isinstance(child.tag, str) or _local(child) in skip:
            continue
        text = " ".join(t.strip() for t in child.itertext() if t.strip())
        attrs = [v for k, v in child.attrib.items() if v.strip()]
        if _local(child) == "property" and child.get("name"):  # OOXML custom property
            out.append(finding(f"{where}:{child.get('name')}", text))
        elif _local(child) == "user-defined":  # ODF user-defined field
            out.append(finding(f"{where}:{child.get(f'{{{_META}}}name', '?')}", text))
        elif text or attrs:
            out.append(finding(f"{where}:{_qualified(child)}", text or attrs))
    return out


def _people(root, where: str) -> list[Finding]:
    names: set[tuple[str, str]] = set()
    for node in root.iter():
        local = _local(node)
        for key, value in node.attrib.items():
            attr = etree.QName(key).localname
            if value.strip() and (attr in _NAME_ATTRS or (attr == "name" and local in _NAMED)):
                names.add((attr, value.strip()))
        if local in ("author", "creator", "creator-initials") and (node.text or "").strip():
            names.add((local, node.text.strip()))
    return [finding(f"{where}:{attr}", value, Risk.PERSON) for attr, value in sorted(names)]


def _rsids(root) -> int:
    count = sum(1 for n in root.iter() if _local(n) == "rsid")
    for node in root.iter():
        count += sum(1 for k in node.attrib if etree.QName(k).localname.startswith("rsid"))
    return count


def _printers(root) -> list[Finding]:
    return [finding(f"ODF settings:{n.get(f'{{{_CONFIG}}}name')}",
                    n.text if n.get(f"{{{_CONFIG}}}name") == "PrinterName"
                    else f"{len(n.text or '')} bytes of printer settings", Risk.DEVICE)
            for n in root.iter(f"{{{_CONFIG}}}config-item")
            if n.get(f"{{{_CONFIG}}}name") in ("PrinterName", "PrinterSetup")
            and (n.text or "").strip()]


def findings(source) -> tuple[str | None, list[Finding]]:
    """The format of the archive ``source`` (a path or an open binary file) and its
    identifying fields.

    :raises zipfile.BadZipFile: and the others of :data:`ERRORS`, when it cannot be read
    """
    with zipfile.ZipFile(source) as zf:
        kind = kind_of(zf)
        out: list[Finding] = []
        rsids = 0
        for info in zf.infolist():
            name = info.filename
            if kind == "OOXML" and name == "docProps/core.xml":
                out += _children(_read_xml(zf, info), "OOXML core")
            elif kind == "OOXML" and name == "docProps/app.xml":
                out += _children(_read_xml(zf, info), "OOXML app", _APP_HARMLESS)
            elif kind == "OOXML" and name == "docProps/custom.xml":
                out += _children(_read_xml(zf, info), "OOXML custom")
            elif kind == "OOXML" and _OOXML_NAMES.match(name):
                root = _read_xml(zf, info)
                out += _people(root, "OOXML comments and changes")
                rsids += _rsids(root) if name.startswith("word/") else 0
            elif kind == "ODF" and name == "meta.xml":
                meta = _read_xml(zf, info).find(f"{{{_OFFICE}}}meta")
                out += [] if meta is None else _children(meta, "ODF meta",
                                                         {"document-statistic"})
            elif kind == "ODF" and name in _ODF_NAMES:
                out += _people(_read_xml(zf, info), "ODF comments and changes")
            elif kind == "ODF" and name == "settings.xml":
                out += _printers(_read_xml(zf, info))
        if rsids:
            out.append(finding("OOXML:rsid", f"{rsids} revision-save IDs (they link "
                               "documents edited in the same sessions)", Risk.IDENTIFIER))
        return kind, out


# -- cleaning ---------------------------------------------------------------------------
def _serialise(root) -> bytes:
    standalone = root.getroottree().docinfo.standalone
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                          standalone=standalone)


def _blank_people(root, drop_rsids: bool) -> None:
    for node in list(root.iter()):
        local = _local(node)
        if drop_rsids and local == "rsids":
            node.getparent().remove(node)
            continue
        for key in list(node.attrib):
            attr = etree.QName(key).localname
            if attr in _NAME_ATTRS or (attr == "name" and local in _NAMED):
                node.set(key, "")
            elif drop_rsids and attr.startswith("rsid"):
                del node.attrib[key]
        if local in ("author", "creator", "creator-initials") and node.text:
            node.text = ""


def _empty_meta(root) -> bytes:
    version = root.get(f"{{{_OFFICE}}}version", "1.2")
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-meta xmlns:office="'
            + _OFFICE.encode() + b'" office:version="' + version.encode("ascii", "replace")
            + b'"><office:meta/></office:document-meta>')


def _cleaned_part(zf, info, kind: str) -> bytes | None:
    """The new bytes of a member, or ``None`` to copy it as it is."""
    name = info.filename
    if kind == "OOXML":
        replacement = {"docProps/core.xml": _EMPTY_CORE, "docProps/app.xml": _EMPTY_APP,
                       "docProps/custom.xml": _EMPTY_CUSTOM}.get(name)
        if replacement is not None:
            return replacement
        if _OOXML_NAMES.match(name):
            root = _read_xml(zf, info)
            _blank_people(root, drop_rsids=name.startswith("word/"))
            return _serialise(root)
    elif kind == "ODF":
        if name == "meta.xml":
            return _empty_meta(_read_xml(zf, info))
        if name in _ODF_NAMES:
            root = _read_xml(zf, info)
            _blank_people(root, drop_rsids=False)
            return _serialise(root)
        if name == "settings.xml":
            root = _read_xml(zf, info)
            for node in root.iter(f"{{{_CONFIG}}}config-item"):
                if node.get(f"{{{_CONFIG}}}name") in ("PrinterName", "PrinterSetup"):
                    node.text = ""
            return _serialise(root)
    return None


def clean(src, dst: Path) -> None:
    """Write the document ``src`` (a path or an open binary file) without its metadata to
    ``dst``; the same input always gives the same bytes."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        kind = kind_of(zin)
        if kind is None:
            raise ValueError("not an OOXML or ODF document")
        for info in zin.infolist():
            out = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            out.compress_type = (zipfile.ZIP_STORED if info.compress_type == zipfile.ZIP_STORED
                                 else zipfile.ZIP_DEFLATED)
            out.create_system = 3
            out.external_attr = (0o40755 << 16 | 0x10) if info.is_dir() else 0o100644 << 16
            data = _cleaned_part(zin, info, kind)
            if data is not None:
                zout.writestr(out, data)
                continue
            with zin.open(info) as reader, \
                    zout.open(out, "w", force_zip64=info.file_size > 2**31) as writer:
                shutil.copyfileobj(reader, writer, 1024 * 1024)
