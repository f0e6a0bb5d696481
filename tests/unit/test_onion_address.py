"""v3 onion address parsing and validation (pure)."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from onionshare_bt.errors import BadOnionAddress, UsageError
from onionshare_bt.onion import (
    exact_onion, is_onion, onion_from_pubkey, parse_onion, pubkey_from_onion,
)

# Real, published v3 addresses (DuckDuckGo and the Tor Project).
DDG = "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad"
TPO = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid"


def _encode(pubkey: bytes, checksum: bytes, version: int) -> str:
    return base64.b32encode(pubkey + checksum + bytes([version])).decode().lower()


def _checksum(pubkey: bytes, version: int) -> bytes:
    return hashlib.sha3_256(b".onion checksum" + pubkey + bytes([version])).digest()[:2]


@pytest.mark.parametrize(
    "text",
    [
        DDG,
        f"{DDG}.onion",
        f"{DDG.upper()}.ONION",
        f"http://{DDG}.onion",
        f"https://{DDG}.onion/",
        f"http://{DDG}.onion/private/abc?x=1#frag",
        f"{DDG}.onion:6881",
        f"HTTP://{DDG}.onion:80/announce",
        f"  {DDG}.onion\n",
        f"http://www.{DDG}.onion/",
    ],
)
def test_parse_accepts_common_forms(text: str) -> None:
    assert parse_onion(text) == DDG


def test_parse_other_known_address() -> None:
    assert parse_onion(f"http://{TPO}.onion/") == TPO


def test_v2_address_rejected_with_explanation() -> None:
    with pytest.raises(BadOnionAddress, match=r"v2 addresses \(16 characters\) are no longer"):
        parse_onion("expyuzz4wqqyqhjn.onion")


@pytest.mark.parametrize("text", [DDG[:-1], DDG + "a", "", ".onion", "abc.onion"])
def test_wrong_length(text: str) -> None:
    with pytest.raises(BadOnionAddress, match="length|empty"):
        parse_onion(text)


def test_not_base32() -> None:
    bad = DDG[:10] + "1" + DDG[11:]  # '1' is outside the base32 alphabet
    with pytest.raises(BadOnionAddress, match="base32"):
        parse_onion(bad)


def test_wrong_version_byte() -> None:
    pubkey = os.urandom(32)
    with pytest.raises(BadOnionAddress, match="version"):
        parse_onion(_encode(pubkey, _checksum(pubkey, 2), 2))


def test_bad_checksum() -> None:
    pubkey = os.urandom(32)
    good = _checksum(pubkey, 3)
    wrong = bytes([good[0] ^ 0xFF, good[1]])
    with pytest.raises(BadOnionAddress, match="checksum"):
        parse_onion(_encode(pubkey, wrong, 3))


def test_typo_fails_checksum() -> None:
    typo = DDG[:20] + ("a" if DDG[20] != "a" else "b") + DDG[21:]
    with pytest.raises(BadOnionAddress, match="checksum"):
        parse_onion(typo)


def test_non_onion_host_rejected() -> None:
    with pytest.raises(BadOnionAddress, match="does not end in .onion"):
        parse_onion("http://example.com/")


def test_bad_onion_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_onion("nope")


def test_is_onion() -> None:
    assert is_onion(DDG)
    assert is_onion(f"{DDG}.onion")
    assert is_onion(f"{DDG.upper()}.ONION")
    assert not is_onion("expyuzz4wqqyqhjn.onion")
    assert not is_onion(DDG[:-1] + ("a" if DDG[-1] != "a" else "b"))
    assert not is_onion("")
    assert not is_onion(f"http://{DDG}.onion/")  # a URL is not an address


def test_pubkey_round_trip() -> None:
    for _ in range(20):
        pubkey = os.urandom(32)
        address = onion_from_pubkey(pubkey)
        assert len(address) == 56 and address == address.lower()
        assert parse_onion(address + ".onion") == address
        assert pubkey_from_onion(address) == pubkey


def test_known_pubkey() -> None:
    pubkey = bytes.fromhex("1d04a1d04a338c6e6ae970bfabee49049d6702250984ca950c01673f4ec034ad")
    assert onion_from_pubkey(pubkey) == DDG


def test_pubkey_wrong_size() -> None:
    with pytest.raises(ValueError):
        onion_from_pubkey(b"\x00" * 31)


def test_exact_onion_takes_network_input_as_it_is_or_not_at_all() -> None:
    assert exact_onion(DDG) == DDG
    assert exact_onion(DDG.upper()) == DDG  # one spelling: lowercase
    assert exact_onion(f"{DDG}.onion") is None  # the suffix only when asked for
    assert exact_onion(f"{DDG}.ONION", suffix=True) == DDG
    for near in (f" {DDG}", f"{DDG} ", f"{DDG}.onion.onion", f"www.{DDG}.onion",
                 f"http://{DDG}.onion", f"{DDG}:80", DDG[:-1] + "a", DDG[:16]):
        assert exact_onion(near, suffix=True) is None, near
    assert is_onion(f" {DDG} ")  # what is_onion forgives, exact_onion does not
    for other in (None, 5, DDG.encode(), [DDG]):
        assert exact_onion(other, suffix=True) is None
