"""The tracker's pure protocol core: announce parsing, the swarm, replies."""

from __future__ import annotations

import urllib.parse

import bencodepy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker import core

ONION = onion_from_pubkey(b"\x01" * 32)
OTHER = onion_from_pubkey(b"\x02" * 32)


def query(**overrides) -> str:
    params = {
        "info_hash": b"\xaa" * 20, "peer_id": b"\xbb" * 20, "ip": f"{ONION}.onion",
        "port": 6881, "uploaded": 0, "downloaded": 0, "left": 100, "event": "started",
    }
    params.update(overrides)
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


def test_valid_announce_parses():
    a = core.parse_announce(query())
    assert (a.info_hash, a.onion, a.port, a.left, a.event) == (b"\xaa" * 20, ONION, 6881, 100, "started")


@pytest.mark.parametrize("overrides, reason", [
    ({"info_hash": b"\xaa" * 19}, "info_hash"),
    ({"info_hash": None}, "info_hash"),
    ({"peer_id": b"x" * 21}, "peer_id"),
    ({"port": "http"}, "port"),
    ({"port": 0}, "port"),
    ({"port": 70000}, "port"),
    ({"ip": "10.0.0.1"}, "onion"),
    ({"ip": "192.168.1.1"}, "onion"),
    ({"ip": "example.com"}, "onion"),
    ({"ip": ""}, "onion"),
    ({"ip": None, "port": 0}, "port"),
    ({"ip": ONION[:-1] + ("a" if ONION[-1] != "a" else "b") + ".onion"}, "onion"),
    ({"event": "exploded"}, "event"),
    ({"left": "-5"}, "left"),
])
def test_bad_announces_are_refused_with_a_reason(overrides, reason):
    with pytest.raises(core.AnnounceError, match=reason):
        core.parse_announce(query(**overrides))


def test_oversized_and_crowded_queries_are_refused():
    with pytest.raises(core.AnnounceError):
        core.parse_announce(query() + "&x=" + "y" * 5000)
    crowded = "&".join(f"k{i}=v" for i in range(10_000))
    with pytest.raises(core.AnnounceError):
        core.parse_announce(crowded)
    with pytest.raises(core.AnnounceError, match="repeated"):
        core.parse_announce(query() + "&port=1")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=600))
def test_random_queries_never_crash(text):
    try:
        core.parse_announce(text)
    except core.AnnounceError:
        pass


def test_swarm_lists_fixed_seeders_and_others_never_the_announcer():
    swarm = core.PeerTable(ttl=100)
    swarm.set_fixed(b"h" * 20, [(OTHER, 6881)])
    a = core.parse_announce(query(info_hash=b"h" * 20))
    assert swarm.announce(a, now=0) == [(OTHER, 6881)]
    third = onion_from_pubkey(b"\x03" * 32)
    b = core.parse_announce(query(info_hash=b"h" * 20, ip=f"{third}.onion", left=0))
    assert swarm.announce(b, now=1) == [(OTHER, 6881), (ONION, 6881)]
    assert swarm.counts(b"h" * 20) == (2, 1)
    assert swarm.peers(b"h" * 20, now=500) == [(OTHER, 6881)]  # the others expired


def test_reply_round_trip_has_only_onions():
    body = core.reply([(ONION, 6881), (OTHER, 7000)], 60, 1, 1)
    assert b"127.0.0.1" not in body
    parsed = core.parse_reply(body)
    assert parsed.peers == ((ONION, 6881), (OTHER, 7000)) and parsed.interval == 60


@pytest.mark.parametrize("body", [
    b"", b"garbage", b"i5e", b"d8:intervali-1ee", b"d8:intervali5e5:peers6:abcdefe",
    b"l" * 5000 + b"e" * 5000, b"d8:intervali5e5:peersli1eee",
])
def test_malformed_replies_are_refused(body):
    try:
        parsed = core.parse_reply(body)
    except core.ReplyError:
        return
    assert parsed.peers == ()  # non-dict peers are dropped, never trusted


def test_reply_drops_ip_peers_and_reports_failure_reason():
    body = bencodepy.encode({b"interval": 30, b"peers": [
        {b"ip": b"1.2.3.4", b"port": 1}, {b"ip": f"{ONION}.onion".encode(), b"port": 6881}]})
    assert core.parse_reply(body).peers == ((ONION, 6881),)
    with pytest.raises(core.ReplyError) as info:
        core.parse_reply(bencodepy.encode({b"failure reason": b"nope"}))
    assert info.value.refused


def test_an_observer_gets_peers_and_is_never_listed():
    observer = core.parse_announce(query(ip=None, port=None))
    assert (observer.onion, observer.port) == ("", 0)
    swarm = core.PeerTable(ttl=100)
    swarm.announce(core.parse_announce(query(left=0)), now=1.0)
    assert swarm.announce(observer, now=2.0) == [(ONION, 6881)]
    assert swarm.size(b"\xaa" * 20) == 1
    core.admit(observer, open_share=False)  # a closed share answers observers too
    # a port but no onion is a client nobody can dial: a closed share refuses it
    with pytest.raises(core.AnnounceError, match="admits obt nodes only"):
        core.admit(core.parse_announce(query(ip=None)), open_share=False)


def test_an_observer_is_given_seeders_only():
    swarm = core.PeerTable(ttl=100)
    swarm.set_fixed(b"\xaa" * 20, [(OTHER, 6881)])
    leecher = core.parse_announce(query(left=5))
    third = onion_from_pubkey(bytes([3]) * 32)
    seeder = core.parse_announce(query(ip=f"{third}.onion", left=0))
    swarm.announce(leecher, now=1.0)
    swarm.announce(seeder, now=1.0)
    got = swarm.announce(core.parse_announce(query(ip=None, port=None)), now=2.0)
    assert got == [(OTHER, 6881), (seeder.onion, 6881)]
