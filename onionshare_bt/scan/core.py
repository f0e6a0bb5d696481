"""The pure core of the metadata scan: findings, their risk classes, and the report.

No I/O here: the format readers (:mod:`.images`, :mod:`.pdf`, :mod:`.office`,
:mod:`.audio`) turn a file's bytes into :class:`Finding` values, and this module orders,
summarises and renders them.
"""

from __future__ import annotations

import dataclasses
import enum
import re

from ..text import safe_text, size_text

#: longest value shown for one field (text and JSON alike: a finding names, it does not copy)
VALUE_LIMIT = 80


class Risk(enum.IntEnum):
    """How much a field gives away, riskiest first (lower value = riskier)."""

    LOCATION = 0  #: where: GPS positions, place names
    PERSON = 1  #: who: names, e-mail addresses, organisations, user folders in paths
    DEVICE = 2  #: which device: serial numbers, camera/phone make and model, printers
    IDENTIFIER = 3  #: unique IDs that link files to each other (document IDs, revision IDs)
    SOFTWARE = 4  #: which program and version made or edited the file
    TIME = 5  #: when it was made, edited or printed
    OTHER = 6  #: titles, comments, thumbnails, cover art, anything else

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclasses.dataclass(frozen=True, order=True)
class Finding:
    """One metadata field found in a file.

    :param field: where it was found and what it is called there (``EXIF:Artist``)
    :param value: a short, printable rendering of its value
    """

    risk: Risk
    field: str
    value: str

    def as_dict(self) -> dict:
        return {"field": self.field, "value": self.value, "risk": self.risk.label}


@dataclasses.dataclass(frozen=True)
class FileReport:
    """What the scan says about one file.

    :param path: the file's path in the share (``folder/sub/name``)
    :param format: the format it was read as (``JPEG``), or ``None`` when not checked
    :param note: why a file was not checked (unknown media format, unreadable)
    """

    path: str
    size: int
    format: str | None
    findings: tuple[Finding, ...] = ()
    note: str | None = None

    @property
    def risk(self) -> Risk | None:
        """The riskiest class among the findings."""
        return min((f.risk for f in self.findings), default=None)

    def as_dict(self) -> dict:
        return {"path": self.path, "format": self.format,
                "fields": [f.as_dict() for f in self.findings]}


@dataclasses.dataclass(frozen=True)
class Report:
    """The scan of everything a share would publish.

    :param files: one report per file, in the share's order
    :param hidden: names of the hidden files and folders left out
    """

    files: tuple[FileReport, ...]
    hidden: tuple[str, ...] = ()

    @property
    def flagged(self) -> tuple[FileReport, ...]:
        """The files with findings, riskiest first."""
        return tuple(sorted((f for f in self.files if f.findings),
                            key=lambda f: (f.risk, f.path)))

    @property
    def unchecked(self) -> tuple[FileReport, ...]:
        """Files of a media or document format that obt cannot read, or could not."""
        return tuple(f for f in self.files if f.note is not None)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def as_dict(self) -> dict:
        """The ``metadata`` part of ``obt share --json``."""
        return {
            "files": [f.as_dict() for f in self.flagged],
            "unchecked": [{"path": f.path, "reason": f.note} for f in self.unchecked],
            "hidden_skipped": list(self.hidden),
            "count": len(self.files),
            "size": self.size,
        }


# -- classification ---------------------------------------------------------------------
#: checked in this order: the first class whose words occur in a field's name wins
_WORDS: tuple[tuple[Risk, tuple[str, ...]], ...] = (
    (Risk.SOFTWARE, ("creatortool", "software", "producer", "application", "generator",
                     "encoder", "encodedby", "encoding", "appversion", "template", "tool",
                     "vendor", "hostsoftware", "tsse", "tenc", "©too")),
    (Risk.LOCATION, ("gps", "latitude", "longitude", "altitude", "location", "city",
                     "country", "province", "geo", "©xyz", "place")),
    (Risk.PERSON, ("author", "creator", "artist", "owner", "by-line", "byline",
                   "modifiedby", "manager", "company", "copyright", "rights", "initials",
                   "email", "e-mail", "username", "userid", "writer", "composer",
                   "performer", "contact", "printed-by", "publisher", "tpe", "tcom", "©art",
                   "person", "people", "credit")),
    (Risk.DEVICE, ("serial", "make", "model", "lens", "device", "camera", "printer",
                   "hostcomputer", "source", "scanner", "phone", "uniquecameramodel")),
    (Risk.IDENTIFIER, ("documentid", "instanceid", "uniqueid", "uuid", "guid", "rsid",
                       "ufid", "priv", "identifier", "derivedfrom", "history")),
    (Risk.TIME, ("date", "time", "modified", "created", "duration", "year", "tdrc", "©day",
                 "tyer", "editing-cycles", "revision")),
)
_EXACT = {"state": Risk.LOCATION, "sublocation": Risk.LOCATION, "name": Risk.OTHER}
_USER_PATH = re.compile(r"(/home/|/Users/|\\Users\\|Documents and Settings\\|/var/mobile/)"
                        r"[^/\\]+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def risk_of(field: str, value: str = "") -> Risk:
    """The risk class of a field, from its name (and from its value, for user folders in
    paths and e-mail addresses, which name a person whatever the field is called).

    :param field: the field's name as the format spells it (``GPSLatitude``, ``dc:creator``)
    """
    name = field.rsplit(":", 1)[-1].lower()
    if name in _EXACT:
        risk = _EXACT[name]
    else:
        whole = field.lower()
        risk = next((r for r, words in _WORDS if any(w in whole for w in words)), Risk.OTHER)
    if risk > Risk.PERSON and (_USER_PATH.search(value) or _EMAIL.search(value)):
        return Risk.PERSON
    return risk


def shorten(value, limit: int = VALUE_LIMIT) -> str:
    """A field's value as it is shown: printable, one line, at most ``limit`` characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        value = "; ".join(shorten(v, limit) for v in value)
    text = safe_text(" ".join(str(value)[:20 * limit].split()), 10 * limit)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def finding(field: str, value, risk: Risk | None = None) -> Finding:
    """A :class:`Finding`, its risk classified by :func:`risk_of` unless given."""
    text = shorten(value)
    return Finding(risk_of(field, str(value)) if risk is None else risk, field, text)


def sorted_findings(findings) -> tuple[Finding, ...]:
    """Findings without duplicates, riskiest first."""
    return tuple(sorted(set(findings)))


# -- rendering --------------------------------------------------------------------------


def render(report: Report, *, max_fields: int = 12, max_names: int = 10) -> list[str]:
    """The lines ``obt share`` prints on stderr before sharing, riskiest first."""
    lines: list[str] = []
    flagged = report.flagged
    if flagged:
        lines.append(f"identifying metadata in {len(flagged)} of {len(report.files)} "
                     "file(s), riskiest first:")
        for item in flagged:
            lines.append(f"  {shorten(item.path, 200)}  ({item.format})")
            for f in item.findings[:max_fields]:
                lines.append(f"    {f.risk.label:10}  {f.field}: {f.value}")
            if len(item.findings) > max_fields:
                lines.append(f"    …and {len(item.findings) - max_fields} more field(s)")
    unchecked = report.unchecked
    if unchecked:
        lines.append(f"not checked for metadata: {len(unchecked)} file(s)")
        for item in unchecked[:max_names]:
            lines.append(f"  {shorten(item.path, 200)}: {item.note}")
        if len(unchecked) > max_names:
            lines.append(f"  …and {len(unchecked) - max_names} more")
    if report.hidden:
        names = ", ".join(shorten(n, 60) for n in report.hidden[:max_names])
        more = f" and {len(report.hidden) - max_names} more" if len(report.hidden) > max_names \
            else ""
        lines.append(f"left out (names starting with '.'): {names}{more}")
    lines.append(f"to share: {len(report.files)} file(s), {size_text(report.size)}")
    return lines
