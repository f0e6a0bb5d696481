"""obt URIs: ``http://<onion>.onion/private/<token>`` and ``.../public/<token>`` (pure)."""

from __future__ import annotations

import dataclasses
import re
import secrets
import urllib.parse

from .errors import BadOnionAddress, BadURI
from .onion import parse_onion

#: tokens are URL-safe base64 of at least 16 random bytes (128 bits)
TOKEN_BYTES = 24
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,86}")
KINDS = ("private", "public")


def new_token() -> str:
    """A fresh share token: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclasses.dataclass(frozen=True)
class ShareURI:
    onion: str  # 56 chars, no ".onion"
    kind: str  # private | public
    token: str = dataclasses.field(repr=False)

    def __str__(self) -> str:
        return f"http://{self.onion}.onion/{self.kind}/{self.token}"

    @property
    def announce_url(self) -> str:
        return f"{self}/announce"


def parse_uri(text: str) -> ShareURI:
    """Parse and validate an obt URI.

    :raises BadURI: with the reason (scheme, host, path or token)
    """
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme != "http":
        raise BadURI(f"not an obt URI (expected http://…onion/…): {text!r}")
    if parts.port not in (None, 80) or parts.username or parts.password:
        raise BadURI("an obt URI has no port, user or password")
    try:
        onion = parse_onion(parts.hostname or "")
    except BadOnionAddress as exc:
        raise BadURI(f"bad onion address in the URI: {exc.message}") from exc
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) != 2 or segments[0] not in KINDS:
        raise BadURI("the path must be /private/<token> or /public/<token>")
    if not _TOKEN.fullmatch(segments[1]):
        raise BadURI("the token in the URI is malformed")
    if parts.query or parts.fragment:
        raise BadURI("an obt URI has no query or fragment")
    return ShareURI(onion=onion, kind=segments[0], token=segments[1])
