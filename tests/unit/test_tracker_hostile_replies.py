"""What a malicious tracker can send back: core.parse_reply keeps only exact onion peers."""

from __future__ import annotations

import bencodepy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker import core

ONION = onion_from_pubkey(b"\x05" * 32)


def body(peers: list, **extra) -> bytes:
    return bencodepy.encode({b"interval": 60, b"peers": peers, **extra})


@pytest.mark.parametrize("host", [
    f" {ONION}.onion", f"{ONION}.onion.onion", f"{ONION}\t", f"{ONION}.onion:80",
    "1.2.3.4", "::1", "localhost", f"{ONION[:-1]}.onion", "",
])
def test_peers_that_are_not_exactly_an_onion_are_dropped(host):
    reply = core.parse_reply(body([{b"ip": host.encode(), b"port": 80},
                                   {b"ip": f"{ONION}.onion".encode(), b"port": 81}]))
    assert reply.peers == ((ONION, 81),)


def test_a_huge_peer_list_is_cut_and_deduplicated():
    many = [{b"ip": f"{ONION}.onion".encode(), b"port": 1 + i % 3} for i in range(10_000)]
    reply = core.parse_reply(body(many))
    assert reply.peers == ((ONION, 1), (ONION, 2), (ONION, 3))


@pytest.mark.parametrize("port", [0, -1, 65536, 2**80, b"80", [80]])
def test_bad_ports_are_dropped(port):
    assert core.parse_reply(body([{b"ip": f"{ONION}.onion".encode(), b"port": port}])).peers == ()


@pytest.mark.parametrize("raw", [
    b"l" * 100_000 + b"e" * 100_000,
    b"d8:intervali60e5:peers" + b"l" * 50_000 + b"e" * 50_001,
    b"d8:intervali60e5:peersle" + b"x" * (core.MAX_REPLY + 1),
])
def test_deep_nesting_and_oversized_replies_are_refused_not_crashing(raw):
    with pytest.raises(core.ReplyError):
        core.parse_reply(raw)


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.one_of(st.integers(), st.binary(max_size=70)),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.sampled_from([b"ip", b"port", b"peers", b"interval", b"x"]),
                        children, max_size=4),
    ),
    max_leaves=30,
))
def test_any_bencoded_value_is_a_reply_or_a_reply_error(value):
    try:
        reply = core.parse_reply(bencodepy.encode(value))
    except core.ReplyError:
        return
    assert all(len(o) == 56 and 0 < p < 65536 for o, p in reply.peers)
