"""Tor v3 client authorization keys (pure): an x25519 pair whose public half an onion
service is created with (``ADD_ONION … ClientAuthV3=``) and whose private half a client must
hold to reach it at all; without it, tor cannot even read the service's introduction points.

Formats, as tor and Tor Browser take them: the public key for ``ADD_ONION`` and the private key
Tor Browser asks for are base32 without padding (52 characters); a ``ClientOnionAuthDir`` file
holds ``<address>:descriptor:x25519:<private base32>``; the control port's
``ONION_CLIENT_AUTH_ADD`` takes ``x25519:<private base64>``.
"""

from __future__ import annotations

import base64
import dataclasses

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

__all__ = ["ClientKey", "new_client_key"]

_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


@dataclasses.dataclass(frozen=True)
class ClientKey:
    """One client's key pair (keep ``private`` secret; it is the credential)."""

    public: str  # base32, for ADD_ONION
    private: str  # base32, what Tor Browser asks for
    private_raw: bytes

    def auth_private(self, address: str) -> str:
        """The line of a ``<name>.auth_private`` file in tor's ``ClientOnionAuthDir``."""
        return f"{address.removesuffix('.onion')}:descriptor:x25519:{self.private}"

    def control_key(self) -> str:
        """The key as the control port's ``ONION_CLIENT_AUTH_ADD`` takes it."""
        return "x25519:" + base64.b64encode(self.private_raw).decode()


def new_client_key() -> ClientKey:
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return ClientKey(public=_b32(key.public_key().public_bytes(*_RAW)), private=_b32(raw),
                     private_raw=raw)
