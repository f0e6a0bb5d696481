"""trust.identity: Ed25519 signing with tor's expanded ED25519-V3 keys (pure Python),
checked against RFC 8032's vectors and against ``cryptography``."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from onionshare_bt.onion import onion_from_pubkey, pubkey_from_onion
from onionshare_bt.trust.identity import SigningKey, expand_seed, verify

# RFC 8032, 7.1, TEST 1 and TEST 2: (seed, public key, message, signature)
VECTORS = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701"
     "cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d"
     "0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
]


def tor_blob(seed: bytes) -> str:
    """What ADD_ONION hands out for a key whose seed is ``seed``."""
    return "ED25519-V3:" + base64.b64encode(expand_seed(seed)).decode()


@pytest.mark.parametrize("seed,public,message,signature", VECTORS, ids=["test1", "test2"])
def test_rfc8032_vectors(seed, public, message, signature):
    key = SigningKey(expand_seed(bytes.fromhex(seed)))
    assert key.public.hex() == public
    assert key.sign(bytes.fromhex(message)).hex() == signature


def test_signatures_equal_cryptographys_from_the_same_seed():
    for size in (0, 1, 31, 64, 1000):
        seed, message = os.urandom(32), os.urandom(size)
        ours = SigningKey(expand_seed(seed))
        theirs = Ed25519PrivateKey.from_private_bytes(seed)
        raw = theirs.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        assert ours.public == raw
        assert ours.sign(message) == theirs.sign(message)  # Ed25519 is deterministic


def test_a_tor_key_signs_for_its_onion_and_nothing_else():
    key = SigningKey.from_tor(tor_blob(b"\x42" * 32))
    assert key.onion == onion_from_pubkey(key.public)
    assert pubkey_from_onion(key.onion) == key.public
    signature = key.sign(b"message")
    assert verify(key.onion, signature, b"message")
    assert not verify(key.onion, signature, b"messagE")
    other = SigningKey.from_tor(tor_blob(b"\x43" * 32))
    assert not verify(other.onion, signature, b"message")
    assert not verify(key.onion, other.sign(b"message"), b"message")
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verify(key.onion, flipped, b"message")
    assert not verify(key.onion, signature[:63], b"message")
    assert not verify("not-an-onion", signature, b"message")


@pytest.mark.parametrize("blob", [
    "RSA1024:abcd", "ED25519-V3:", "ED25519-V3:not base64!", "ed25519-v3:" + "A" * 88,
    "ED25519-V3:" + base64.b64encode(b"\x00" * 32).decode(),
    "ED25519-V3:" + base64.b64encode(b"\x01" * 64).decode(),  # not a clamped scalar
    None, 5,
])
def test_malformed_keys_are_refused(blob):
    with pytest.raises(ValueError):
        SigningKey.from_tor(blob)


def test_the_key_never_reaches_a_repr():
    blob = tor_blob(b"\x44" * 32)
    key = SigningKey.from_tor(blob)
    assert blob[11:30] not in repr(key) and expand_seed(b"\x44" * 32).hex()[:16] not in repr(key)
