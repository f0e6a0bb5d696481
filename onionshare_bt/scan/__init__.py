"""Identifying metadata in the files of a share: found, shown, and cleaned on request.

Before ``obt share`` publishes anything, the CLI scans every file the share would hold
(:func:`scan_path`) and prints what it found, riskiest first: where (GPS positions, place
names), who (authors, editors, owners, e-mail addresses, user folders), which device (serial
numbers, camera and phone models, printers), which IDs link files together, which software,
and when. ``--scrub`` has the node write cleaned copies into its staging folder
(:func:`stage_scrubbed`) and share those; the originals are never written to.

Formats and the libraries that read them (one module each):

- :mod:`.images`: JPEG, PNG, WebP (segments and chunks, EXIF decoded with Pillow)
- :mod:`.pdf`: PDF (pikepdf)
- :mod:`.office`: OOXML and ODF documents (zipfile and lxml)
- :mod:`.audio`: MP3, FLAC, Ogg Vorbis/Opus, M4A and others (mutagen)

:mod:`.core` is the pure part (findings, risk classes, the report and its rendering);
:mod:`.formats` sends each file to its reader; :mod:`.stage` walks a share and stages
cleaned copies. Finding nothing does not prove a file is clean (docs/metadata.md).
"""

from __future__ import annotations

from .core import FileReport, Finding, Report, Risk, render
from .stage import Staged, is_staged, scan_path, scan_selection, stage_scrubbed

__all__ = ["FileReport", "Finding", "Report", "Risk", "Staged", "is_staged", "render",
           "scan_path", "scan_selection", "stage_scrubbed"]
