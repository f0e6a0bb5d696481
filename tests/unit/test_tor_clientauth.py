"""Tor v3 client authorization keys: formats as tor and Tor Browser take them."""

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from onionshare_bt.tor.clientauth import new_client_key


def test_a_key_pair_in_tors_formats():
    key = new_client_key()
    assert len(key.public) == len(key.private) == 52 and key.public != key.private
    raw = base64.b32decode(key.private + "====")
    assert raw == key.private_raw
    public = X25519PrivateKey.from_private_bytes(raw).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.b32encode(public).decode().rstrip("=") == key.public
    onion = "a" * 56
    assert key.auth_private(f"{onion}.onion") == f"{onion}:descriptor:x25519:{key.private}"
    assert key.control_key() == "x25519:" + base64.b64encode(raw).decode()
    assert new_client_key().private != key.private  # fresh each time
