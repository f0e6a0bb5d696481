"""Reading other nodes: their ``/node`` document and public catalogue, validated.

Everything a remote node sends is untrusted: sizes are capped (the HTTP client stops
reading at :data:`MAX_DOCUMENT`), types checked, onion addresses and URIs parsed; what does
not fit is dropped or refused, never trusted. Text that reaches the terminal (item names, a
release offer's version) is cleaned at ingest with :func:`onionshare_bt.text.safe_text`:
control and bidi-override characters removed, lengths capped; an item whose name is empty
after that, or not a string, is dropped.
"""

from __future__ import annotations

import json
import math
import re

from ..errors import BadOnionAddress, BadURI, MalformedReply
from ..onion import parse_onion
from ..text import DESCRIPTION_LIMIT, NAME_LIMIT, has_unsafe, safe_text
from ..tor.http import OnionHTTP
from ..uri import cast_key, parse_cast_uri, parse_uri
from .core import Item, NodeInfo

MAX_DOCUMENT = 1024 * 1024
MAX_TRUSTS = 1024
MAX_ITEMS = 10_000
#: files one catalogue item may claim
MAX_FILES = 1_000_000
#: the longest release version an offer may name (release.manifest.MAX_VERSION)
MAX_OFFER_VERSION = 64
_CATALOGUE_PATH = re.compile(r"/public/[A-Za-z0-9_-]{22,86}")
#: added times beyond this (the year 3000) are not times
_MAX_TIME = 32503680000.0


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedReply(f"not a JSON document: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedReply("not a JSON object")
    return data


def parse_node(onion: str, body: bytes) -> tuple[NodeInfo, str | None]:
    """A ``/node`` document: the node's trust list and its catalogue path (or None)."""
    data = _json(body)
    if data.get("onion") != onion:
        raise MalformedReply("the node document names another onion")
    trusts = []
    raw = data.get("trusts", [])
    for entry in raw[:MAX_TRUSTS] if isinstance(raw, list) else []:
        try:
            trusts.append(parse_onion(entry) if isinstance(entry, str) else None)
        except BadOnionAddress:
            continue
    catalogue = data.get("catalogue")
    if not (isinstance(catalogue, str) and _CATALOGUE_PATH.fullmatch(catalogue)):
        catalogue = None
    return NodeInfo(onion, tuple(dict.fromkeys(t for t in trusts if t))), catalogue


def clean_node(body: bytes) -> bytes:
    """The ``/node`` document as kept for later readers (the release check): a release
    offer whose version is not short, plain text is replaced by a malformed marker, so it
    is reported as malformed and its text never reaches a terminal."""
    data = _json(body)
    offer = data.get("release")
    if isinstance(offer, dict):
        version = offer.get("version")
        if isinstance(version, str) and (len(version) > MAX_OFFER_VERSION
                                          or has_unsafe(version)):
            data["release"] = "malformed"
    return json.dumps(data).encode()


def parse_catalogue(body: bytes) -> list[Item]:
    """A catalogue: its well-formed items; the rest is dropped."""
    raw = _json(body).get("items", [])
    items = []
    for entry in raw[:MAX_ITEMS] if isinstance(raw, list) else []:
        try:
            items.append(_item(entry))
        except (BadURI, KeyError, TypeError, ValueError):
            continue
    return items


def item_name(name: object) -> str:
    """A name from another node, cleaned (:func:`safe_text`, :data:`NAME_LIMIT`).

    :raises ValueError: not a string, or nothing left once cleaned
    """
    if not isinstance(name, str) or len(name) > 4 * NAME_LIMIT:
        raise ValueError("bad name")
    cleaned = safe_text(name, NAME_LIMIT).strip()
    if not cleaned:
        raise ValueError("bad name")
    return cleaned


def _count(value: object, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= hi:
        raise ValueError("bad count")
    return value


def _item(entry: dict) -> Item:
    name, size, infohash = entry["name"], entry["size"], entry["infohash"]
    name = item_name(name)
    size = _count(size, 2**63 - 1)
    if not isinstance(infohash, str) or len(infohash) != 40:
        raise ValueError("bad infohash")
    bytes.fromhex(infohash)
    uri = entry["uri"]
    if not isinstance(uri, str) or len(uri) > 256:
        raise ValueError("bad uri")
    kind = entry.get("kind", "share")
    if kind == "cast":  # a live broadcast: its key is its URI's, nothing else to claim
        uri = str(parse_cast_uri(uri))
        if infohash.lower() != cast_key(uri):
            raise ValueError("a cast's key is the SHA-1 of its URI")
        size = 0
    elif kind == "share":
        uri = str(parse_uri(uri))
    else:
        raise ValueError("unknown kind")
    files = entry.get("files", 0)
    added = entry.get("added", 0)
    if isinstance(added, bool) or not isinstance(added, (int, float)) \
            or not (math.isfinite(added) and 0 <= added <= _MAX_TIME):
        added = 0
    description = entry.get("description", "")
    if not isinstance(description, str) or len(description) > 4 * DESCRIPTION_LIMIT:
        description = ""  # the item stays; a description that is no text does not
    return Item(name=name, size=size, infohash=infohash.lower(), uri=uri, added=float(added),
                files=files if kind == "share" and isinstance(files, int)
                and not isinstance(files, bool) and 0 <= files <= MAX_FILES else 0,
                description=safe_text(description, DESCRIPTION_LIMIT).strip(), kind=kind)


class Remote:
    """Fetch other nodes' documents through Tor, each bounded by ``timeout``."""

    def __init__(self, http: OnionHTTP, timeout: float) -> None:
        self.http, self.timeout = http, timeout
        self.catalogues: dict[str, str] = {}  # onion -> catalogue path, learnt from /node
        self.bodies: dict[str, bytes] = {}  # onion -> its /node document (clean_node)

    async def node(self, onion: str) -> NodeInfo:
        body = await self.http.get(f"http://{onion}.onion/node", self.timeout, MAX_DOCUMENT)
        info, catalogue = parse_node(onion, body)
        self.bodies[onion] = clean_node(body)
        if catalogue:
            self.catalogues[onion] = catalogue
        return info

    async def catalogue(self, onion: str, path: str | None = None) -> list[Item]:
        path = path or self.catalogues.get(onion)
        if path is None:
            await self.node(onion)
            path = self.catalogues.get(onion)
        if path is None:
            return []
        body = await self.http.get(f"http://{onion}.onion{path}", self.timeout, MAX_DOCUMENT)
        return parse_catalogue(body)
