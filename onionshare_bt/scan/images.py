"""Images: JPEG, PNG and WebP, read and cleaned at the level of their segments and chunks.

Cleaning never decodes or re-encodes a picture: it copies the segments that draw it and
drops the rest, so the pixels are bit for bit the same and the result depends on the input
alone. EXIF is decoded with Pillow. What a cleaned image keeps:

- JPEG: the coded picture, its tables, a JFIF header without thumbnail, Adobe's colour
  transform flag, and an EXIF block holding only the orientation (when it turns the picture).
  Dropped: EXIF, XMP, IPTC/Photoshop, ICC profiles, comments, vendor segments, and anything
  after the end of the picture (phones append further images there).
- PNG: the chunks that draw the picture (and its animation, gamma, colours, transparency,
  pixel size). Dropped: text chunks, EXIF, XMP, ICC profiles, the modification time, and
  every chunk obt does not know.
- WebP: the bitstream, alpha and animation chunks; EXIF, XMP and ICC chunks are dropped.
"""

from __future__ import annotations

import struct
import zlib

from PIL import ExifTags, Image

from . import xmp
from .core import Finding, Risk, finding

_EXIF_HEADER = b"Exif\x00\x00"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: EXIF tags that say nothing about who, where or with what
_HARMLESS_TAGS = {
    "Orientation", "XResolution", "YResolution", "ResolutionUnit", "YCbCrPositioning",
    "ExifVersion", "FlashPixVersion", "ColorSpace", "ExifImageWidth", "ExifImageHeight",
    "ComponentsConfiguration", "ExifOffset", "GPSInfo", "InteropOffset", "ImageWidth",
    "ImageLength", "BitsPerSample", "Compression", "PhotometricInterpretation",
    "SamplesPerPixel", "PlanarConfiguration", "YCbCrSubSampling", "JpegIFOffset",
    "JpegIFByteCount", "Padding",
}
_IPTC = {(2, 80): "By-line", (2, 85): "By-lineTitle", (2, 90): "City",
         (2, 92): "Sub-location", (2, 95): "Province-State", (2, 101): "Country",
         (2, 116): "CopyrightNotice", (2, 118): "Contact", (2, 120): "Caption-Abstract",
         (2, 122): "Writer-Editor", (2, 55): "DateCreated", (2, 65): "OriginatingProgram",
         (2, 25): "Keywords", (2, 5): "ObjectName", (2, 110): "Credit", (2, 115): "Source"}
#: PNG chunks a cleaned image keeps: they draw it
PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB",
            b"sBIT", b"bKGD", b"hIST", b"pHYs", b"acTL", b"fcTL", b"fdAT", b"cICP",
            b"mDCV", b"cLLI"}
PNG_SILENT = PNG_KEEP | {b"iCCP"}  # dropped when cleaning, never reported
WEBP_KEEP = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF"}
WEBP_SILENT = WEBP_KEEP | {b"ICCP"}
MAX_TEXT = 1024 * 1024


class Malformed(ValueError):
    """The bytes are not a well-formed image of the format they claim."""


# -- EXIF -------------------------------------------------------------------------------
def _gps_degrees(value, ref) -> float | None:
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    sign = -1 if str(ref).upper().startswith(("S", "W")) else 1
    return sign * (d + m / 60 + s / 3600)


def exif_findings(data: bytes, where: str = "EXIF") -> list[Finding]:
    """The identifying tags of an EXIF block (TIFF bytes, with or without ``Exif\\0\\0``)."""
    exif = Image.Exif()
    exif.load(data)
    out: list[Finding] = []
    quiet = 0
    tags = list(exif.items())
    for ifd in (ExifTags.IFD.Exif, ExifTags.IFD.Interop):
        tags += list(exif.get_ifd(ifd).items())
    for tag, value in tags:
        name = ExifTags.TAGS.get(tag, f"Tag0x{tag:04X}")
        if name in _HARMLESS_TAGS or isinstance(value, dict):
            continue
        if name == "MakerNote":
            out.append(finding(f"{where}:MakerNote", f"{len(value)} bytes of the camera "
                               "maker's data (often serial numbers)", Risk.DEVICE))
            continue
        found = finding(f"{where}:{name}", value)
        if found.risk is Risk.OTHER or name.startswith(("Exposure", "Shutter", "Aperture")):
            quiet += 1  # exposure settings and the like: counted, not listed
        else:
            out.append(found)
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    if gps:
        lat = _gps_degrees(gps.get(2), gps.get(1))
        lon = _gps_degrees(gps.get(4), gps.get(3))
        where_text = (f"{lat:.5f}, {lon:.5f}" if lat is not None and lon is not None
                      else f"{len(gps)} GPS tag(s)")
        out.append(finding(f"{where}:GPS position", where_text, Risk.LOCATION))
    if exif.get_ifd(ExifTags.IFD.IFD1):
        out.append(finding(f"{where}:thumbnail", "a preview image (it may show the picture "
                           "before it was cropped or edited)", Risk.OTHER))
    if quiet:
        out.append(finding(f"{where}:other tags", f"{quiet} more (exposure settings and the "
                           "like)", Risk.OTHER))
    return out


def exif_orientation(data: bytes) -> int:
    exif = Image.Exif()
    exif.load(data)
    value = exif.get(0x0112, 1)
    return value if isinstance(value, int) and 2 <= value <= 8 else 1


def _orientation_only(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()
    return data if data.startswith(_EXIF_HEADER) else _EXIF_HEADER + data


# -- JPEG -------------------------------------------------------------------------------
def jpeg_segments(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """The marker segments of a JPEG: ``(marker, start, end)`` each, a scan's coded data
    included in its SOS segment; and where the picture ends (EOI included).

    :raises Malformed: when ``data`` is not a JPEG
    """
    if data[:2] != b"\xff\xd8":
        raise Malformed("not a JPEG")
    segments = [(0xD8, 0, 2)]
    pos, size = 2, len(data)
    while pos < size:
        if data[pos] != 0xFF:
            raise Malformed(f"no marker at byte {pos}")
        while pos + 1 < size and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 1 >= size:
            break
        marker = data[pos + 1]
        if marker == 0xD9:
            segments.append((marker, pos, pos + 2))
            return segments, pos + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            segments.append((marker, pos, pos + 2))
            pos += 2
            continue
        if pos + 4 > size:
            raise Malformed("truncated segment header")
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if length < 2 or end > size:
            raise Malformed(f"segment at byte {pos} runs past the end")
        if marker == 0xDA:
            end = _scan_end(data, end)
        segments.append((marker, pos, end))
        pos = end
    return segments, size  # no EOI: a truncated picture, kept as it is


def _scan_end(data: bytes, pos: int) -> int:
    """Where a scan's entropy-coded data ends: at the next marker other than RSTn."""
    while True:
        i = data.find(b"\xff", pos)
        if i < 0 or i + 1 >= len(data):
            return len(data)
        nxt = data[i + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
            pos = i + 2
        elif nxt == 0xFF:
            pos = i + 1
        else:
            return i


def jpeg_findings(data: bytes) -> list[Finding]:
    segments, end = jpeg_segments(data)
    out: list[Finding] = []
    for marker, start, stop in segments:
        payload = data[start + 4:stop]
        if marker == 0xE1 and payload.startswith(_EXIF_HEADER):
            out += exif_findings(payload)
        elif marker == 0xE1 and payload.startswith(_XMP_HEADER):
            out += xmp.findings(payload[len(_XMP_HEADER):])
        elif marker == 0xE1 and payload.startswith(_XMP_EXT_HEADER):
            out.append(finding("XMP:extension", f"{len(payload)} bytes", Risk.OTHER))
        elif marker == 0xED:
            out += iptc_findings(payload)
        elif marker == 0xFE:
            out.append(finding("JPEG:comment", payload))
        elif marker == 0xE0 and payload.startswith(b"JFIF\x00") and len(payload) > 14 \
                and payload[12] and payload[13]:
            out.append(finding("JFIF:thumbnail", "a preview image", Risk.OTHER))
        elif marker == 0xE0 and payload.startswith(b"JFXX\x00"):
            out.append(finding("JFXX:thumbnail", "a preview image", Risk.OTHER))
        elif 0xE1 <= marker <= 0xEF and marker not in (0xE2, 0xEE):
            label = payload[:20].split(b"\x00", 1)[0].decode("latin-1", "replace")
            out.append(finding(f"JPEG:APP{marker - 0xE0}", label or f"{len(payload)} bytes",
                               Risk.OTHER))
    if end < len(data) and data[end:].strip(b"\x00"):
        out.append(finding("JPEG:after the picture", f"{len(data) - end} bytes (phones put "
                           "more images there, each with its own metadata)", Risk.OTHER))
    return out


def iptc_findings(payload: bytes) -> list[Finding]:
    """The IPTC fields of a Photoshop (APP13) block."""
    out, pos = [], 0
    while True:
        pos = payload.find(b"\x1c", pos)
        if pos < 0 or pos + 5 > len(payload):
            break
        record, dataset = payload[pos + 1], payload[pos + 2]
        (length,) = struct.unpack(">H", payload[pos + 3:pos + 5])
        value = payload[pos + 5:pos + 5 + length] if length < 0x8000 else b""
        if record in (1, 2) and length < 0x8000 and pos + 5 + length <= len(payload):
            name = _IPTC.get((record, dataset), f"{record}:{dataset}")
            if record == 2 and dataset != 0:
                out.append(finding(f"IPTC:{name}", value))
            pos += 5 + length
        else:
            pos += 1
    return out or [finding("Photoshop:APP13", f"{len(payload)} bytes", Risk.OTHER)]


def jpeg_clean(data: bytes) -> bytes:
    """The picture with no metadata (see the module's docstring for what is kept)."""
    segments, _ = jpeg_segments(data)
    orientation = 1
    out = [b"\xff\xd8"]
    for marker, start, stop in segments[1:]:
        payload = data[start + 4:stop]
        if marker == 0xE1 and payload.startswith(_EXIF_HEADER):
            orientation = orientation if orientation != 1 else exif_orientation(payload)
        elif marker == 0xE0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
            out.append(b"\xff\xe0\x00\x10" + payload[:12] + b"\x00\x00")
        elif 0xE0 <= marker <= 0xEF and not (marker == 0xEE and payload.startswith(b"Adobe")):
            continue
        elif marker != 0xFE:
            out.append(data[start:stop])
    if orientation != 1:  # after SOI and JFIF, where EXIF belongs
        block = _orientation_only(orientation)
        at = 2 if len(out) > 1 and out[1].startswith(b"\xff\xe0") else 1
        out.insert(at, b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block)
    return b"".join(out)


# -- PNG --------------------------------------------------------------------------------
def png_chunks(data: bytes):
    """``(type, payload, start, end)`` for each chunk of a PNG.

    :raises Malformed: when ``data`` is not a PNG
    """
    if not data.startswith(PNG_SIGNATURE):
        raise Malformed("not a PNG")
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise Malformed(f"chunk {kind!r} runs past the end")
        yield kind, data[pos + 8:pos + 8 + length], pos, end
        pos = end
        if kind == b"IEND":
            return
    raise Malformed("truncated: no IEND chunk")


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    return d.decompress(data, MAX_TEXT)


def png_findings(data: bytes) -> list[Finding]:
    out: list[Finding] = []
    for kind, payload, _, _ in png_chunks(data):
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            key, _, rest = payload.partition(b"\x00")
            name = key.decode("latin-1")
            if kind == b"zTXt":
                text = _inflate(rest[1:]).decode("latin-1")
            elif kind == b"iTXt":
                compressed, rest = rest[:1] == b"\x01", rest[2:]
                _, _, rest = rest.partition(b"\x00")  # language
                _, _, rest = rest.partition(b"\x00")  # translated keyword
                raw = _inflate(rest) if compressed else rest
                if name == "XML:com.adobe.xmp":
                    out += xmp.findings(raw)
                    continue
                text = raw.decode("utf-8", "replace")
            else:
                text = rest.decode("latin-1")
            out.append(finding(f"PNG:{name}", text))
        elif kind == b"eXIf":
            out += exif_findings(payload)
        elif kind == b"tIME" and len(payload) == 7:
            y, mo, d, h, mi, s = struct.unpack(">HBBBBB", payload)
            out.append(finding("PNG:tIME", f"{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}",
                               Risk.TIME))
        elif kind not in PNG_SILENT:
            out.append(finding(f"PNG:{kind.decode('latin-1')}", f"{len(payload)} bytes",
                               Risk.OTHER))
    return out


def png_clean(data: bytes) -> bytes:
    out = [PNG_SIGNATURE]
    out += [data[start:end] for kind, _, start, end in png_chunks(data) if kind in PNG_KEEP]
    return b"".join(out)


# -- WebP -------------------------------------------------------------------------------
def webp_chunks(data: bytes):
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Malformed("not a WebP")
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos:pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4:pos + 8])
        end = pos + 8 + length + (length & 1)
        if pos + 8 + length > len(data):
            raise Malformed(f"chunk {kind!r} runs past the end")
        yield kind, data[pos + 8:pos + 8 + length], pos, min(end, len(data))
        pos = end


def webp_findings(data: bytes) -> list[Finding]:
    out: list[Finding] = []
    for kind, payload, _, _ in webp_chunks(data):
        if kind == b"EXIF":
            out += exif_findings(payload)
        elif kind == b"XMP ":
            out += xmp.findings(payload)
        elif kind not in WEBP_SILENT:
            out.append(finding(f"WebP:{kind.decode('latin-1').strip()}",
                               f"{len(payload)} bytes", Risk.OTHER))
    return out


def webp_clean(data: bytes) -> bytes:
    body = [b"WEBP"]
    for kind, payload, start, end in webp_chunks(data):
        if kind == b"VP8X" and payload:
            flags = payload[0] & ~(0x20 | 0x08 | 0x04)  # ICC, EXIF, XMP
            chunk = data[start:end]
            body.append(chunk[:8] + bytes([flags]) + chunk[9:])
        elif kind in WEBP_KEEP:
            body.append(data[start:end])
    joined = b"".join(body)
    return b"RIFF" + struct.pack("<I", len(joined)) + joined
