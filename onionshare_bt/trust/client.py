"""Reading other nodes: their ``/node`` document and public catalogue, validated.

Everything a remote node sends is untrusted: sizes are capped, types checked, onion
addresses and URIs parsed; what does not fit is dropped or refused, never trusted.
"""

from __future__ import annotations

import json

from ..errors import BadOnionAddress, BadURI, MalformedReply
from ..tor.onion import parse_onion
from ..tracker.client import TrackerClient
from ..uri import parse_uri
from .core import Item, NodeInfo

MAX_DOCUMENT = 1024 * 1024
MAX_TRUSTS = 1024
MAX_ITEMS = 10_000


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
    if not (isinstance(catalogue, str) and catalogue.startswith("/public/")):
        catalogue = None
    return NodeInfo(onion, tuple(t for t in trusts if t)), catalogue


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


def _item(entry: dict) -> Item:
    name, size, infohash = entry["name"], entry["size"], entry["infohash"]
    if not isinstance(name, str) or not 0 < len(name) <= 255 or "\0" in name:
        raise ValueError("bad name")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError("bad size")
    if not isinstance(infohash, str) or len(infohash) != 40:
        raise ValueError("bad infohash")
    bytes.fromhex(infohash)
    uri = str(parse_uri(entry["uri"]))
    files = entry.get("files", 0)
    added = entry.get("added", 0)
    return Item(name=name, size=size, infohash=infohash.lower(), uri=uri,
                added=float(added) if isinstance(added, (int, float)) else 0.0,
                files=files if isinstance(files, int) else 0)


class Remote:
    """Fetch other nodes' documents through Tor, each bounded by ``timeout``."""

    def __init__(self, http: TrackerClient, timeout: float) -> None:
        self.http, self.timeout = http, timeout
        self.catalogues: dict[str, str] = {}  # onion -> catalogue path, learnt from /node
        self.bodies: dict[str, bytes] = {}  # onion -> its /node document as received

    async def node(self, onion: str) -> NodeInfo:
        body = await self.http.get(f"http://{onion}.onion/node", self.timeout, MAX_DOCUMENT)
        info, catalogue = parse_node(onion, body)
        self.bodies[onion] = body
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
