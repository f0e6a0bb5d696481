"""PDF: the document information dictionary, XMP metadata streams, and annotation authors.

Read and cleaned with pikepdf (qpdf). Cleaning drops the Info dictionary, every
``/Metadata`` stream and ``/PieceInfo`` (private data of the program that made it), the
author and dates of every annotation, and writes a document ID derived from the content
(the original ID often comes from the time and path of its making), so the same input
always gives the same bytes. Pages, text and images are copied as they are: metadata inside
an embedded image or font is not removed (docs/metadata.md).
"""

from __future__ import annotations

from pathlib import Path

import pikepdf

from . import xmp
from .core import Finding, finding, risk_of

ERRORS = (pikepdf.PdfError, pikepdf.PasswordError, ValueError, OSError)
MAX_OBJECTS = 2_000_000
_ANNOT_KEYS = ("/T", "/M", "/CreationDate")


def _text(value) -> str:
    try:
        return str(value)
    except (UnicodeError, ValueError):
        return repr(value)


def _objects(pdf: pikepdf.Pdf):
    for i, obj in enumerate(pdf.objects):
        if i > MAX_OBJECTS:
            return
        if isinstance(obj, (pikepdf.Dictionary, pikepdf.Stream)):
            yield obj


def _is_markup(obj) -> bool:
    """An annotation whose ``/T`` is its author (a form field's ``/T`` is its name)."""
    return "/Rect" in obj and "/Subtype" in obj and obj.get("/Subtype") != "/Widget" \
        and obj.get("/FT") is None


def findings(source) -> list[Finding]:
    """Every identifying field of the PDF ``source`` (a path or an open binary file).

    :raises pikepdf.PdfError: and the others of :data:`ERRORS`, when it cannot be read
    """
    out: list[Finding] = []
    with pikepdf.open(source) as pdf:
        info = pdf.trailer.get("/Info")
        if isinstance(info, pikepdf.Dictionary):
            for key, value in info.items():
                text = _text(value).strip()
                if text:  # /Creator and /Producer name programs, not people
                    risk = (risk_of("CreatorTool", text) if key in ("/Creator", "/Producer")
                            else None)
                    out.append(finding(f"PDF Info:{key.lstrip('/')}", text, risk))
        authors = set()
        for obj in _objects(pdf):
            if "/Metadata" in obj and isinstance(obj.get("/Metadata"), pikepdf.Stream):
                try:
                    out += xmp.findings(obj.Metadata.read_bytes(), "PDF XMP")
                except (pikepdf.PdfError, ValueError, SyntaxError):  # lxml's too
                    out.append(finding("PDF XMP:stream", "unreadable metadata stream"))
            if "/PieceInfo" in obj:
                out.append(finding("PDF:PieceInfo", "private data of the program that made "
                                   "it (often a full copy of its own document)"))
            if _is_markup(obj):
                t = obj.get("/T")
                if t is not None and _text(t).strip():
                    authors.add(_text(t).strip())
        for name in sorted(authors):
            out.append(finding("PDF annotation:author", name))
    return out


def clean(src, dst: Path) -> None:
    """Write ``src`` (a path or an open binary file) without its metadata to ``dst``; the
    same input always gives the same bytes."""
    with pikepdf.open(src) as pdf:
        if "/Info" in pdf.trailer:
            del pdf.trailer["/Info"]
        for obj in list(_objects(pdf)):
            for key in ("/Metadata", "/PieceInfo"):
                if key in obj:
                    del obj[key]
            if _is_markup(obj):
                for key in _ANNOT_KEYS:
                    if key in obj:
                        del obj[key]
        pdf.save(dst, deterministic_id=True, fix_metadata_version=False,
                 object_stream_mode=pikepdf.ObjectStreamMode.preserve)
