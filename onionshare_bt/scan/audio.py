"""Audio: ID3 (v1 and v2) and APEv2 tags, Vorbis comments (FLAC, Ogg Vorbis, Opus), MP4/M4A
tags, cover art. Read and removed with mutagen.

Cleaning removes every tag and picture block; the audio frames are copied as they are.
What the encoder wrote into the stream itself (a LAME or Xing header, an Ogg vendor
string) stays: it names the encoder, not a person.
"""

from __future__ import annotations

from pathlib import Path

import mutagen
import mutagen.apev2
import mutagen.flac
import mutagen.id3

from .core import Finding, Risk, finding

ERRORS = (mutagen.MutagenError, OSError, ValueError, EOFError, IndexError, KeyError)
EXTENSIONS = {".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".m4b", ".aac", ".wav",
              ".aif", ".aiff", ".wv", ".ape", ".mpc"}
_MP4_NAMES = {"©ART": "artist", "aART": "album artist", "©wrt": "composer", "©too": "encoder",
              "©day": "date", "©nam": "title", "©alb": "album", "©cmt": "comment",
              "covr": "cover art", "©xyz": "location", "cprt": "copyright", "©grp": "grouping",
              "©lyr": "lyrics", "©enc": "encoded by"}
_PICTURES = ("APIC", "covr", "METADATA_BLOCK_PICTURE", "COVERART", "Cover Art")


def _describe(key: str, value) -> str:
    if key.startswith(_PICTURES):
        return "cover art"
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    if isinstance(value, list):
        return "; ".join(_describe(key, v) for v in value)
    return str(value)


def _id3_findings(tags) -> list[Finding]:
    out = []
    for key, frame in tags.items():
        doc = (type(frame).__doc__ or "").strip().split("\n")[0].strip()
        label = f"ID3:{key}" + (f" ({doc})" if doc and key[:4] not in ("TXXX", "PRIV") else "")
        if key.startswith("APIC"):
            out.append(finding(label, f"cover art ({len(frame.data)} bytes)", Risk.OTHER))
        elif key.startswith(("PRIV", "UFID")):
            out.append(finding(label, f"{frame.owner}: {len(frame.data)} bytes",
                               Risk.IDENTIFIER))
        elif key.startswith("GEOB"):
            out.append(finding(label, f"an embedded file ({len(frame.data)} bytes)"))
        elif hasattr(frame, "text"):
            out.append(finding(label, [str(t) for t in frame.text]))
        else:
            out.append(finding(label, frame.pprint()))
    return out


def findings(source) -> tuple[str | None, list[Finding]]:
    """The audio format of ``source`` (a path or an open binary file; ``None`` when mutagen
    does not know it), and its tags.

    :raises mutagen.MutagenError: and the others of :data:`ERRORS`
    """
    f = mutagen.File(source)
    if f is None:
        return None, []
    kind = type(f).__name__
    out: list[Finding] = []
    tags = f.tags
    if isinstance(tags, mutagen.id3.ID3):
        out += _id3_findings(tags)
    elif tags is not None:
        where = "Vorbis" if kind in ("FLAC", "OggVorbis", "OggOpus", "OggFLAC") else kind
        for key, value in tags.items():
            name = _MP4_NAMES.get(key, key)
            out.append(finding(f"{where}:{name}", _describe(key, value),
                               Risk.OTHER if key.startswith(_PICTURES) else None))
    for picture in getattr(f, "pictures", None) or []:
        out.append(finding(f"{kind}:picture", f"cover art ({len(picture.data)} bytes)",
                           Risk.OTHER))
    try:
        if hasattr(source, "seek"):
            source.seek(0)
        ape = mutagen.apev2.APEv2(source)
    except mutagen.apev2.APENoHeaderError:
        ape = None
    if ape is not None and kind != "APEv2File":
        out += [finding(f"APEv2:{k}", _describe(k, str(v))) for k, v in ape.items()]
    return kind, out


def strip(dst: Path) -> None:
    """Remove every tag and picture from the file at ``dst`` (a copy: it is changed)."""
    f = mutagen.File(dst)
    if f is None:
        raise ValueError("not an audio file mutagen knows")
    if isinstance(f, mutagen.flac.FLAC):
        f.clear_pictures()
        f.save(deleteid3=True)
        f = mutagen.flac.FLAC(dst)
    if f.tags is not None:
        f.delete()
    if isinstance(f, mutagen.id3.ID3FileType):
        mutagen.id3.delete(dst, delete_v1=True, delete_v2=True)
    try:
        mutagen.apev2.delete(dst)
    except mutagen.apev2.APENoHeaderError:
        pass  # there was no APEv2 tag: nothing to remove
