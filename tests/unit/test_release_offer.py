"""A node's release offer on /node is hostile input: parsed strictly, refused when malformed."""

from __future__ import annotations

import base64
import json

import pytest

from onionshare_bt import config
from onionshare_bt.errors import ReleaseRefused, UsageError
from onionshare_bt.release import core
from onionshare_bt.release.service import parse_offer, release_id
from onionshare_bt.onion import onion_from_pubkey

ONION = onion_from_pubkey(bytes([7]) * 32)
URI = f"http://{ONION}.onion/private/{'A' * 32}"


def doc(**release) -> bytes:
    base = {"version": "1.2.3", "uri": URI, "manifest": base64.b64encode(b"{}").decode(),
            "signature": base64.b64encode(b"s" * 64).decode()}
    base.update(release)
    return json.dumps({"onion": ONION, "release": base}).encode()


def test_a_well_formed_offer_is_read_with_its_bytes():
    offer = parse_offer(ONION, doc())
    assert offer == {"source": ONION, "version": "1.2.3", "uri": URI, "manifest": b"{}",
                     "signature": b"s" * 64}


def test_no_offer_is_none():
    assert parse_offer(ONION, json.dumps({"onion": ONION}).encode()) is None
    assert parse_offer(ONION, b"not json") is None


@pytest.mark.parametrize("bad", [
    {"version": 5},
    {"uri": "http://example.com/private/" + "A" * 32},
    {"uri": f"http://{ONION}.onion/public/{'A' * 32}"},
    {"uri": URI + "x" * 600},
    {"manifest": "not base64!"},
    {"manifest": base64.b64encode(b"x" * (core.MAX_MANIFEST + 1)).decode()},
    {"signature": base64.b64encode(b"s" * 200).decode()},
])
def test_malformed_offers_are_refused(bad):
    with pytest.raises(ReleaseRefused):
        parse_offer(ONION, doc(**bad))


def test_a_non_object_offer_is_refused():
    with pytest.raises(ReleaseRefused):
        parse_offer(ONION, json.dumps({"release": [1, 2]}).encode())


def test_release_ids_tell_every_part_apart():
    ids = {release_id(b"m", b"s", "u"), release_id(b"m", b"s", "v"),
           release_id(b"ms", b"", "u"), release_id(b"m", b"su", "")}
    assert len(ids) == 4


def test_release_keys_in_the_config_are_checked(tmp_path, monkeypatch):
    monkeypatch.delenv("OBT_NETWORK", raising=False)
    key = core.public_key(core.generate_seed()).hex()
    (tmp_path / "config.toml").write_text(f'release_keys = ["{key}"]\n')
    assert config.load(tmp_path).release_keys == (key,)
    (tmp_path / "config.toml").write_text('release_keys = ["abc"]\n')
    with pytest.raises(UsageError):
        config.load(tmp_path)
    (tmp_path / "config.toml").write_text("release_keys = []\n")
    with pytest.raises(UsageError):
        config.load(tmp_path)
