"""core.PeerTable keeps at most ``max_peers`` announced peers per torrent, evicting the stalest."""

from __future__ import annotations

import pytest

from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tracker import core

HASH = b"h" * 20
SEED = onion_from_pubkey(b"\xee" * 32)


def onion(i: int) -> str:
    return onion_from_pubkey(i.to_bytes(32, "big"))


def ann(i: int, event: str = "", left: int = 1, info_hash: bytes = HASH, port: int = 80):
    return core.Announce(info_hash, b"p" * 20, onion(i), port, 0, 0, left, event, numwant=0)


def test_default_cap_is_a_thousand_per_torrent():
    swarm = core.PeerTable(ttl=1000)
    for i in range(5000):
        swarm.announce(ann(i), now=i * 0.01)
    assert swarm.size(HASH) == core.MAX_PEERS == 1000
    assert {o for o, _ in swarm.peers(HASH, now=50)} == {onion(i) for i in range(4000, 5000)}


def test_the_stalest_peer_makes_room_and_re_announcing_keeps_a_peer_fresh():
    swarm = core.PeerTable(ttl=1000, max_peers=3)
    swarm.set_fixed(HASH, [(SEED, 80)])
    for i in range(3):
        swarm.announce(ann(i), now=i)
    swarm.announce(ann(0), now=3)  # peer 0 is now the freshest; 1 is the stalest
    swarm.announce(ann(3), now=4)
    assert swarm.peers(HASH, now=5) == [(SEED, 80), (onion(2), 80), (onion(0), 80), (onion(3), 80)]
    assert swarm.counts(HASH) == (1, 3)  # the fixed seeder is never evicted nor counted in


def test_one_onion_cycling_ports_cannot_exceed_the_cap():
    swarm = core.PeerTable(ttl=1000, max_peers=10)
    for port in range(1, 2000):
        swarm.announce(ann(1, port=port), now=port)
    assert swarm.size(HASH) == 10
    assert [p for _, p in swarm.peers(HASH, now=2000)] == list(range(1990, 2000))


def test_caps_are_per_torrent_and_expiry_still_applies():
    swarm = core.PeerTable(ttl=10, max_peers=5)
    other = b"o" * 20
    for i in range(20):
        swarm.announce(ann(i), now=0)
        swarm.announce(ann(100 + i, info_hash=other), now=0)
    assert swarm.size(HASH) == swarm.size(other) == 5
    swarm.announce(ann(500), now=5)
    assert swarm.peers(HASH, now=11) == [(onion(500), 80)]  # the rest expired


def test_stopped_frees_a_slot_and_never_creates_a_swarm():
    swarm = core.PeerTable(ttl=1000, max_peers=2)
    swarm.announce(ann(1), now=0)
    swarm.announce(ann(2), now=1)
    swarm.announce(ann(1, event="stopped"), now=2)
    swarm.announce(ann(3), now=3)
    assert swarm.size(HASH) == 2
    assert {o for o, _ in swarm.peers(HASH, now=4)} == {onion(2), onion(3)}
    swarm.announce(ann(9, event="stopped", info_hash=b"x" * 20), now=5)
    assert swarm.size(b"x" * 20) == 0 and b"x" * 20 not in swarm._peers


def test_a_cap_below_one_is_refused():
    with pytest.raises(ValueError):
        core.PeerTable(ttl=10, max_peers=0)
