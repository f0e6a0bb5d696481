"""What obt takes from another node is cleaned at ingest (trust.client): catalogue items,
/node documents and the release offers they carry. Names lose control and bidi characters
and are capped; wrong types, huge numbers and non-finite times are refused or zeroed."""

from __future__ import annotations

import base64
import json
import math

import pytest

from onionshare_bt.errors import MalformedReply, ReleaseRefused
from onionshare_bt.release.service import parse_offer
from onionshare_bt.text import has_unsafe
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.trust.client import (MAX_FILES, MAX_TRUSTS, Remote, clean_node, item_name,
                                        parse_catalogue, parse_node)

ONION = onion_from_pubkey(b"\x07" * 32)
URI = f"http://{ONION}.onion/private/{'A' * 32}"


def item(**fields) -> dict:
    base = {"name": "album", "size": 10, "files": 2, "infohash": "ab" * 20, "uri": URI,
            "added": 1000.0}
    base.update(fields)
    return base


def catalogue(*items) -> bytes:
    return json.dumps({"node": ONION, "items": list(items)}).encode()


def one(**fields):
    items = parse_catalogue(catalogue(item(**fields)))
    return items[0] if items else None


def test_a_clean_item_is_kept_as_is():
    got = one()
    assert (got.name, got.size, got.files, got.added) == ("album", 10, 2, 1000.0)


@pytest.mark.parametrize("name,shown", [
    ("\x1b[2J\x1b]0;pwned\x07album", "[2J]0;pwnedalbum"),
    ("evil\u202egpj.exe", "evilgpj.exe"),
    ("line\nbreak\r\x00", "linebreak"),
    ("\u2066iso\u2069 \x9bC1", "iso C1"),
    ("x" * 300, "x" * 255),
])
def test_names_lose_their_controls_and_are_capped(name, shown):
    got = one(name=name)
    assert got.name == shown and not has_unsafe(got.name)


@pytest.mark.parametrize("name", ["", "\x1b\x07\n", "   ", None, 5, ["a"], {"a": 1},
                                  "x" * 2000])
def test_names_that_are_empty_once_cleaned_or_not_strings_drop_the_item(name):
    assert one(name=name) is None
    with pytest.raises(ValueError):
        item_name(name)


@pytest.mark.parametrize("fields", [
    {"size": -1}, {"size": True}, {"size": 2**64}, {"size": "10"}, {"size": 1.5},
    {"infohash": "zz" * 20}, {"infohash": 5}, {"uri": 5}, {"uri": "http://x.com/a"},
    {"uri": URI + "x" * 300},
], ids=repr)
def test_bad_fields_drop_the_item(fields):
    assert one(**fields) is None
    assert one() is not None  # positive control


@pytest.mark.parametrize("added", [float("nan"), float("inf"), -1, 10**20, True, "1000"])
def test_non_finite_or_absurd_times_become_zero(added):
    got = parse_catalogue(catalogue(item(added=added)))[0]
    assert got.added == 0.0 and math.isfinite(got.added)


@pytest.mark.parametrize("files", [-1, True, MAX_FILES + 1, "2", 2.0])
def test_bad_file_counts_become_zero(files):
    assert one(files=files).files == 0


def node_doc(**fields) -> bytes:
    base = {"onion": ONION, "catalogue": f"/public/{'T' * 32}", "trusts": []}
    base.update(fields)
    return json.dumps(base).encode()


def test_node_documents_are_checked():
    info, path = parse_node(ONION, node_doc(trusts=[ONION, ONION, "junk", 5, ONION.upper()]))
    assert info.trusts == (ONION,) and path == f"/public/{'T' * 32}"
    with pytest.raises(MalformedReply):
        parse_node(onion_from_pubkey(b"\x08" * 32), node_doc())
    assert len(parse_node(ONION, node_doc(trusts=[onion_from_pubkey(i.to_bytes(32, "big"))
                                                  for i in range(MAX_TRUSTS + 5)]))[0].trusts
               ) == MAX_TRUSTS


@pytest.mark.parametrize("path", [
    "/public/", "/public/../../node", "/public/a\x1b[2J" + "b" * 24, "/public/" + "T" * 32 + "/x",
    "/private/" + "T" * 32, 5, "/public/" + "T" * 5000])
def test_a_catalogue_path_must_be_a_public_token(path):
    assert parse_node(ONION, node_doc(catalogue=path))[1] is None


def offer(version) -> dict:
    return {"version": version, "uri": URI, "manifest": base64.b64encode(b"{}").decode(),
            "signature": base64.b64encode(b"s" * 64).decode()}


@pytest.mark.parametrize("version", ["1.2.3\x1b[2J", "1.2.3\u202e", "9" * 65, "1\n2"])
def test_a_release_offer_with_an_unsafe_version_is_refused_as_malformed(version):
    raw = node_doc(release=offer(version))
    # positive control: without cleaning, the version's bytes would reach the offer
    assert parse_offer(ONION, raw)["version"] in (version, version[:64])
    with pytest.raises(ReleaseRefused, match="malformed"):
        parse_offer(ONION, clean_node(raw))


def test_a_clean_release_offer_survives_cleaning():
    raw = node_doc(release=offer("1.2.3"))
    assert parse_offer(ONION, clean_node(raw)) == parse_offer(ONION, raw)


class FakeHttp:
    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies

    async def get(self, url: str, timeout: float, limit: int) -> bytes:
        return self.bodies[url]


async def test_remote_keeps_only_the_cleaned_node_document():
    raw = node_doc(release=offer("1.0\x1b]0;x\x07"))
    remote = Remote(FakeHttp({f"http://{ONION}.onion/node": raw,
                              f"http://{ONION}.onion/public/{'T' * 32}": catalogue(
                                  item(name="a\x1b[31mb"))}), 5)
    await remote.node(ONION)
    assert b"\\u001b" not in remote.bodies[ONION] and b"\x1b" not in remote.bodies[ONION]
    items = await remote.catalogue(ONION)
    assert [i.name for i in items] == ["a[31mb"]


@pytest.mark.parametrize("description,kept", [
    ("Live set, 2026", "Live set, 2026"),
    ("\x1b]0;pwned\x07 night\u202e\nsounds ", "]0;pwned nightsounds"),
    ("y" * 1500, "y" * 1024),
    ("z" * 5000, ""),  # far too long: dropped, the item kept
    (None, ""), (7, ""), (["a"], ""), ({"a": 1}, ""),
])
def test_a_description_is_cleaned_and_capped_and_a_bad_one_dropped_not_the_item(description,
                                                                               kept):
    got = one(description=description)
    assert got is not None and got.name == "album"
    assert got.description == kept and not has_unsafe(got.description)


def test_an_item_without_a_description_has_none():
    assert one().description == ""


def test_a_local_description_is_one_plain_line_and_goes_with_public():
    from types import SimpleNamespace

    from onionshare_bt.errors import UsageError
    from onionshare_bt.trust.service import TrustService

    published = []
    store = SimpleNamespace(catalogue=SimpleNamespace(
        publish=lambda *args: published.append(args)),
        identity=SimpleNamespace(public_token=lambda: "T" * 32))
    trust = TrustService(None, store, None, None, None)
    trust.onion = ONION
    share = SimpleNamespace(role="share", id="ab", name="album")
    for bad in ("two\nlines", "\x1b[2Jwiped", "evil\u202etxt", "x" * 1025):
        with pytest.raises(UsageError, match="one line of at most 1024"):
            trust.publish(share, True, bad)
    with pytest.raises(UsageError, match="goes with --public"):
        trust.publish(share, False, "private things")
    assert published == []  # nothing refused was written
    trust.publish(share, True, "  Field recordings  ")
    trust.publish(share, True)
    assert published == [("ab", True, "Field recordings"), ("ab", True, None)]


def test_a_live_broadcast_in_a_catalogue_is_kept_with_its_kind_and_nothing_it_claims():
    from onionshare_bt.uri import cast_key

    cast_uri = f"http://{ONION}.onion/cast/{'C' * 32}"
    got = one(kind="cast", uri=cast_uri, infohash=cast_key(cast_uri), size=10**9, files=7)
    assert got is not None and got.kind == "cast" and got.uri == cast_uri
    assert (got.size, got.files) == (0, 0)  # a broadcast has neither
    assert one().kind == "share"
    # its key must be its URI's: a node cannot make a cast pass for another item
    assert one(kind="cast", uri=cast_uri, infohash="ab" * 20) is None
    assert one(kind="cast", uri=URI, infohash=cast_key(URI)) is None  # not a cast's URI
    assert one(kind="share", uri=cast_uri) is None  # nor a share with a cast's URI
    assert one(kind="radio") is None and one(kind=["share"]) is None
