"""obt URIs: ``http://<onion>.onion/private/<token>`` and ``.../public/<token>``, and a live
broadcast's ``.../cast/<token>`` (pure)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import urllib.parse

from .errors import BadOnionAddress, BadURI
from .onion import parse_onion

#: tokens are URL-safe base64 of at least 16 random bytes (128 bits)
TOKEN_BYTES = 24
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,86}")
KINDS = ("private", "public")
#: a live broadcast's URI (:mod:`onionshare_bt.cast`): never a share's
CAST = "cast"


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
    return _parse(text, KINDS)


def cast_key(uri: str) -> str:
    """A live broadcast's key in catalogues and search, where a share has its infohash:
    the SHA-1 of its URI, 40 hex digits."""
    return hashlib.sha1(uri.encode()).hexdigest()


def parse_cast_uri(text: str) -> ShareURI:
    """Parse and validate a live broadcast's URI (``http://<onion>.onion/cast/<token>``).

    :raises BadURI: with the reason (scheme, host, path or token)
    """
    return _parse(text, (CAST,))


def _parse(text: str, kinds: tuple[str, ...]) -> ShareURI:
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
    if len(segments) != 2 or segments[0] not in kinds:
        if kinds == (CAST,):
            hint = ("that is a share's URI: fetch it with obt get"
                    if segments and segments[0] in KINDS else "the path must be /cast/<token>")
            raise BadURI(hint)
        if segments and segments[0] == CAST:
            raise BadURI("that is a live broadcast's URI: listen with obt listen")
        raise BadURI("the path must be /private/<token> or /public/<token>")
    if not _TOKEN.fullmatch(segments[1]):
        raise BadURI("the token in the URI is malformed")
    if parts.query or parts.fragment:
        raise BadURI("an obt URI has no query or fragment")
    return ShareURI(onion=onion, kind=segments[0], token=segments[1])
