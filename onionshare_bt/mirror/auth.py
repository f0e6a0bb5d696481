"""The mirror credential: who may push peers to an origin and be named as its mirror.

Anyone holding a node's public catalogue token (``/node`` gives it to everyone) may *read*
the origin's sync feed: it tells no more than a public announce. Pushing peers into the
origin's tracker, and being registered as a mirror that the origin names to its downloaders,
needs a credential only a mirror the origin knows holds: each sync call carries, in the
:data:`HEADER` header, an Ed25519 signature by the mirror node's *identity onion* key, and
the origin accepts it only from an onion in its trust list (``obt trust add <mirror node>``).

The signed message (:func:`message`) binds the purpose, the origin's identity onion (a
credential for one origin is worthless at another), the signing node, the mirror onion it
asks to be named (the tracker onion downloaders are sent to), a timestamp, a nonce and the
SHA-256 of the exact request body. The origin refuses a timestamp outside ±:data:`SKEW`
seconds of its own clock and a nonce it saw within that window (:class:`Verifier`).

Header: ``v1 node=<56> mirror=<56> ts=<unix seconds> nonce=<32 hex> sig=<base64url>``.

Pure: the clock reading and the trust list are passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable

from ..errors import Refused
from ..onion import is_onion
from ..trust import identity
from ..trust.protocol import SYNC_HEADER

HEADER = SYNC_HEADER
PURPOSE = b"obt-mirror-sync-v1"
#: seconds a credential's timestamp may differ from the origin's clock, either way
SKEW = 300
#: nonces remembered at once; beyond it new credentials are refused until some expire
MAX_NONCES = 20_000
_HEADER_VALUE = re.compile(
    r"v1 node=(?P<node>[a-z2-7]{56}) mirror=(?P<mirror>[a-z2-7]{56}) ts=(?P<ts>[0-9]{1,12}) "
    r"nonce=(?P<nonce>[0-9a-f]{32}) sig=(?P<sig>[A-Za-z0-9_-]{86})")


def message(origin: str, node: str, mirror: str, ts: int, nonce: str, body: bytes) -> bytes:
    """The exact bytes a mirror signs for one sync call."""
    digest = hashlib.sha256(body).hexdigest()
    return b"\n".join([PURPOSE, origin.encode(), node.encode(), mirror.encode(),
                       str(ts).encode(), nonce.encode(), digest.encode()])


def credential(key: identity.SigningKey, origin: str, mirror: str, body: bytes, ts: int,
               nonce: str) -> str:
    """The :data:`HEADER` value for one sync call, signed by ``key`` (the node's identity).

    :param nonce: 32 fresh hex characters (``secrets.token_hex(16)``)
    """
    node = key.onion
    signature = key.sign(message(origin, node, mirror, ts, nonce, body))
    sig = base64.urlsafe_b64encode(signature).decode().rstrip("=")
    return f"v1 node={node} mirror={mirror} ts={ts} nonce={nonce} sig={sig}"


class Verifier:
    """The origin's side: check credentials, remember their nonces.

    :param origin: this node's identity onion, or "" while it is not published (every
      credential is then refused)
    """

    def __init__(self, origin: str = "") -> None:
        self.origin = origin
        self._nonces: dict[str, int] = {}  # nonce -> the last second its timestamp passes

    def check(self, header: str, body: bytes, now: float,
              trusted: Callable[[str], bool]) -> tuple[str, str]:
        """Verify one call's credential.

        :param now: the origin's wall clock, seconds since the epoch
        :param trusted: tells whether an identity onion is in the origin's trust list
        :returns: ``(node, mirror)``: the signing identity and the mirror onion it registers
        :raises Refused: with a fixed reason (never an echo of the header)
        """
        found = _HEADER_VALUE.fullmatch(header) if len(header) < 512 else None
        if found is None:
            raise Refused("malformed mirror credential")
        node, mirror, nonce = found["node"], found["mirror"], found["nonce"]
        ts = int(found["ts"])
        if not (is_onion(node) and is_onion(mirror)):
            raise Refused("malformed mirror credential")
        if not self.origin:
            raise Refused("this node's identity onion is not published yet")
        if abs(now - ts) > SKEW:
            raise Refused("mirror credential expired (check the clocks)")
        try:
            signature = base64.urlsafe_b64decode(found["sig"] + "==")
        except (binascii.Error, ValueError) as exc:
            raise Refused("malformed mirror credential") from exc
        signed = message(self.origin, node, mirror, ts, nonce, body)
        if not identity.verify(node, signature, signed):
            raise Refused("bad mirror credential signature")
        if not trusted(node):
            raise Refused("this node does not trust the mirror's node")
        self._forget(now)
        if nonce in self._nonces:
            raise Refused("mirror credential replayed")
        if len(self._nonces) >= MAX_NONCES:
            raise Refused("too many mirror calls; try again later")
        self._nonces[nonce] = ts + SKEW
        return node, mirror

    def _forget(self, now: float) -> None:
        """Drop nonces whose credentials can no longer pass the timestamp check."""
        if self._nonces and min(self._nonces.values()) < now:
            self._nonces = {n: t for n, t in self._nonces.items() if t >= now}
