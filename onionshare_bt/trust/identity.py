"""Sign with a node's identity onion key, verify against an onion address (pure, no I/O).

Tor hands out an onion service's key as ``ED25519-V3:<base64>``: the 64-byte *expanded*
secret key ``a || prefix``, where ``a`` is the clamped scalar and ``prefix`` the second half
of SHA-512 of a seed tor no longer has. ``cryptography`` only signs from a seed, so
:class:`SigningKey` signs with the expanded key in plain Python, after RFC 8032 (5.1.6,
steps 2-6). Signatures are ordinary Ed25519: anyone verifies them with the public key inside
the v3 address (:func:`verify`, through ``cryptography``).

Signing costs two scalar multiplications in Python (a few milliseconds); the public key is
computed once per :class:`SigningKey`. Nothing here is constant time: a node signs its own
messages at its own pace, and the secret never reaches a log (``repr`` hides it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import BadOnionAddress
from ..onion import onion_from_pubkey, pubkey_from_onion

__all__ = ["SigningKey", "expand_seed", "verify"]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_I = pow(2, (_P - 1) // 4, _P)  # sqrt(-1)
_KEY_PREFIX = "ED25519-V3:"


def _recover_x(y: int, sign: int) -> int:
    xx = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(xx, (_P + 3) // 8, _P)
    if (x * x - xx) % _P:
        x = x * _I % _P
    if x % 2 != sign:
        x = _P - x
    return x


_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = _recover_x(_BY, 0)
#: the base point in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z
_B = (_BX, _BY, 1, _BX * _BY % _P)
_ZERO = (0, 1, 1, 0)


def _add(p: tuple, q: tuple) -> tuple:
    """Point addition on the twisted Edwards curve (complete: also doubles)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _double(p: tuple) -> tuple:
    x1, y1, z1, _ = p
    a = x1 * x1 % _P
    b = y1 * y1 % _P
    c = 2 * z1 * z1 % _P
    h = a + b
    e = h - (x1 + y1) * (x1 + y1) % _P
    g = a - b
    f = c + g
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _multiply(scalar: int, point: tuple = _B) -> tuple:
    result = _ZERO
    for bit in bin(scalar)[2:]:
        result = _double(result)
        if bit == "1":
            result = _add(result, point)
    return result


def _encode(point: tuple) -> bytes:
    x, y, z, _ = point
    inverse = pow(z, _P - 2, _P)
    x, y = x * inverse % _P, y * inverse % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _hash_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def expand_seed(seed: bytes) -> bytes:
    """The 64-byte expanded secret key of a 32-byte Ed25519 seed (RFC 8032 5.1.5).

    Tor's ``ED25519-V3`` key blobs are in this form; tests use it to make one from a seed.
    """
    if len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    digest = bytearray(hashlib.sha512(seed).digest())
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    return bytes(digest)


class SigningKey:
    """An expanded Ed25519 secret key that signs.

    :param expanded: the 64 bytes ``a || prefix``
    :raises ValueError: if it is not 64 bytes or ``a`` is not a clamped scalar
    """

    def __init__(self, expanded: bytes) -> None:
        if len(expanded) != 64:
            raise ValueError("an expanded Ed25519 key is 64 bytes")
        scalar = int.from_bytes(expanded[:32], "little")
        if scalar & 7 or not scalar >> 254 & 1 or scalar >> 255:
            raise ValueError("not a clamped Ed25519 scalar")
        self._scalar = scalar
        self._prefix = expanded[32:]
        self.public = _encode(_multiply(scalar))

    @classmethod
    def from_tor(cls, blob: str) -> SigningKey:
        """Read tor's ``ED25519-V3:<base64 of the expanded key>`` (what ADD_ONION returns).

        :raises ValueError: another key type or a malformed key (the message names neither)
        """
        if not isinstance(blob, str) or not blob.startswith(_KEY_PREFIX):
            raise ValueError("not an ED25519-V3 key")
        try:
            raw = base64.b64decode(blob[len(_KEY_PREFIX):], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the ED25519-V3 key is not base64") from exc
        return cls(raw)

    @property
    def onion(self) -> str:
        """The v3 onion address this key publishes."""
        return onion_from_pubkey(self.public)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message`` (deterministic, RFC 8032)."""
        r = _hash_int(self._prefix, message) % _L
        big_r = _encode(_multiply(r))
        k = _hash_int(big_r, self.public, message) % _L
        s = (r + k * self._scalar) % _L
        return big_r + s.to_bytes(32, "little")

    def __repr__(self) -> str:
        return f"SigningKey(onion={self.onion[:12]}…)"


def verify(onion: str, signature: bytes, message: bytes) -> bool:
    """Tell whether ``signature`` over ``message`` was made by the key of ``onion``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(pubkey_from_onion(onion))
        public.verify(signature, message)
    except (InvalidSignature, BadOnionAddress, ValueError, TypeError):
        return False
    return True
