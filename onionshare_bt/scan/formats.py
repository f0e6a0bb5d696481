"""Which reader a file goes to, and the two things every reader does: find and clean.

A file's format is told by its first bytes (and, for audio and office documents, by its
name too); a file whose name says it is a kind of media obt cannot read is reported as
not checked, never as clean.
"""

from __future__ import annotations

import os
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

from . import audio, images, office, pdf
from .core import FileReport, sorted_findings

#: images are read whole; a larger one is reported as not checked
MAX_IMAGE = 512 * 1024 * 1024
_IMAGE_ERRORS = (images.Malformed, ValueError, SyntaxError, OSError, KeyError, IndexError,
                 TypeError, EOFError, struct.error, zlib.error)
_OFFICE_EXT = {".docx", ".docm", ".dotx", ".xlsx", ".xlsm", ".xltx", ".pptx", ".pptm",
               ".potx", ".odt", ".ods", ".odp", ".odg", ".odf", ".ott", ".ots", ".otp"}
#: formats that often carry metadata and that obt does not read
UNCHECKED = {".tif", ".tiff", ".heic", ".heif", ".avif", ".gif", ".jxl", ".dng", ".cr2",
             ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".psd", ".svg", ".mov", ".mp4",
             ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".wmv", ".wma", ".mts", ".doc", ".xls",
             ".ppt", ".rtf", ".epub", ".pages", ".numbers", ".key", ".xcf", ".eps", ".ai"}
_IMAGES = {"JPEG": (images.jpeg_findings, images.jpeg_clean),
           "PNG": (images.png_findings, images.png_clean),
           "WebP": (images.webp_findings, images.webp_clean)}


def sniff(path: Path) -> str | None:
    """The format obt reads ``path`` as: JPEG, PNG, WebP, PDF, office, audio, or ``None``."""
    with open(path, "rb", opener=_nofollow) as f:
        head = f.read(1024)
    suffix = path.suffix.lower()
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(images.PNG_SIGNATURE):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if b"%PDF-" in head:
        return "PDF"
    if head.startswith(b"PK\x03\x04") and suffix in _OFFICE_EXT:
        return "office"
    if suffix in audio.EXTENSIONS or head.startswith((b"ID3", b"fLaC", b"OggS")):
        return "audio"
    return None


def _nofollow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW)


def scan_file(path: Path, shown_as: str, size: int) -> FileReport:
    """What ``path`` (shown as ``shown_as``) carries.

    A file that cannot be read as the format it claims is reported as not checked, with
    the reason; nothing here raises for a file's content.
    """
    kind = sniff(path)
    if kind is None:
        note = (f"obt cannot read {path.suffix.lower()} files for metadata"
                if path.suffix.lower() in UNCHECKED else None)
        return FileReport(shown_as, size, None, note=note)
    try:
        fmt, found = _find(kind, path, size)
    except _errors(kind) as exc:
        return FileReport(shown_as, size, None, note=f"could not read it as {kind}: "
                                                    f"{str(exc)[:120] or type(exc).__name__}")
    if fmt is None:
        return FileReport(shown_as, size, None, note=None)
    return FileReport(shown_as, size, fmt, sorted_findings(found))


def _errors(kind: str) -> tuple:
    return {"PDF": pdf.ERRORS, "office": office.ERRORS, "audio": audio.ERRORS}.get(
        kind, _IMAGE_ERRORS)


def _find(kind: str, path: Path, size: int):
    if kind in _IMAGES:
        if size > MAX_IMAGE:
            raise ValueError(f"larger than {MAX_IMAGE // 2**20} MiB")
        return kind, _IMAGES[kind][0](_read(path))
    with open(path, "rb", opener=_nofollow) as f:
        if kind == "PDF":
            return "PDF", pdf.findings(f)
        if kind == "office":
            return office.findings(f)
        return audio.findings(f)


def _read(path: Path) -> bytes:
    with open(path, "rb", opener=_nofollow) as f:
        return f.read()


def clean_file(src: Path, dst: Path) -> str | None:
    """Write a copy of ``src`` without metadata to ``dst``; the same input always gives the
    same bytes. A file of a format obt does not clean is copied as it is.

    :returns: the format cleaned, or ``None`` when the file was copied as it is
    :raises: the reader's errors (see :func:`scan_file`) when ``src`` is malformed
    """
    kind = sniff(src)
    if kind in _IMAGES:
        dst.write_bytes(_IMAGES[kind][1](_read(src)))
        return kind
    with open(src, "rb", opener=_nofollow) as f:
        if kind == "PDF":
            pdf.clean(f, dst)
            return kind
        if kind == "office" and _is_office(f):
            f.seek(0)
            office.clean(f, dst)
            return kind
        if kind == "audio" and audio.findings(f)[0] is not None:
            _copy(src, dst)
            audio.strip(dst)
            return kind
    _copy(src, dst)
    return None


def _is_office(f) -> bool:
    with zipfile.ZipFile(f) as zf:
        return office.kind_of(zf) is not None


def _copy(src: Path, dst: Path) -> None:
    with open(src, "rb", opener=_nofollow) as reader, open(dst, "wb") as writer:
        shutil.copyfileobj(reader, writer, 1024 * 1024)
