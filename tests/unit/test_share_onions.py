"""The share's other onions a download reads from the .torrent the share's tracker served
(:func:`onionshare_bt.tracker.metafile.share_onions`): dialled as the download starts, so
what a hostile share puts there must name nothing it could not name in an announce reply,
and nothing at all when it is not exactly what obt serves."""

from __future__ import annotations

import secrets

import bencodepy

from onionshare_bt.onion import MAX_ONIONS, onion_from_pubkey
from onionshare_bt.tracker.metafile import announce_url, share_onions, with_trackers

TOKEN = "tok-" + secrets.token_urlsafe(16)
TORRENT = bencodepy.encode({b"info": {b"name": b"f", b"length": 1, b"piece length": 16384,
                                      b"pieces": bytes(20)}})


def onion() -> str:
    return onion_from_pubkey(secrets.token_bytes(32))


def served(*tiers) -> bytes:
    return with_trackers(TORRENT, [list(t) for t in tiers])


def test_the_first_tier_of_the_served_torrent_names_the_shares_onions():
    own, mirror = [onion(), onion()], onion()
    data = served([announce_url(o, TOKEN) for o in own], [announce_url(mirror, TOKEN)])
    assert share_onions(data, TOKEN) == own  # mirrors (the second tier) serve no peers


def test_a_url_for_another_token_or_shape_names_none():
    good = announce_url(onion(), TOKEN)
    for bad in (announce_url(onion(), "other-token"),
                announce_url(onion(), TOKEN).replace("http://", "https://"),
                announce_url(onion(), TOKEN) + "?x=1",
                "http://127.0.0.1/private/" + TOKEN + "/announce",
                "http://" + "a" * 56 + ".onion/private/" + TOKEN + "/announce",  # no v3 key
                announce_url(onion(), TOKEN).replace(".onion/", ".onion.evil/")):
        assert share_onions(served([good, bad]), TOKEN) == [], bad


def test_no_more_than_a_share_can_have_and_each_once():
    many = [onion() for _ in range(MAX_ONIONS + 5)]
    data = served([announce_url(o, TOKEN) for o in many + many[:2]])
    assert share_onions(data, TOKEN) == many[:MAX_ONIONS]
    assert share_onions(served([announce_url(many[0], TOKEN)] * 3), TOKEN) == many[:1]


def test_what_is_not_a_served_torrent_names_none():
    url = announce_url(onion(), TOKEN).encode()
    for data in (b"", b"not bencode", b"d4:infoi1ee", TORRENT,
                 bencodepy.encode({b"announce-list": url, b"info": {}}),
                 bencodepy.encode({b"announce-list": [url], b"info": {}}),
                 bencodepy.encode({b"announce-list": [[1]], b"info": {}}),
                 bencodepy.encode({b"announce-list": [], b"info": {}}),
                 b"d13:announce-list" + b"l" * 500 + b"e" * 500 + b"4:infodee"):
        assert share_onions(data, TOKEN) == [], data[:40]
