"""The bridges' pure core: random address pools, endpoint caps, the peer-wire filter."""

from __future__ import annotations

import ipaddress

import bencodepy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onionshare_bt.errors import NodeError
from onionshare_bt.multiplex.core import (
    HANDSHAKE,
    INBOUND_NET,
    MAX_EXT_HANDSHAKE,
    OUTBOUND_NET,
    AddressPool,
    EndpointTable,
    ExtIds,
    WireError,
    WireFilter,
    clean_ext_handshake,
)

# what libtorrent 2.1's write_extensions sends (bt_peer_connection.cpp), as captured
LT_EXT = {
    b"m": {b"lt_donthave": 7, b"share_mode": 8, b"upload_only": 3, b"ut_holepunch": 4,
           b"ut_metadata": 2},
    b"p": 40123, b"v": b"", b"yourip": b"\x7f\x40\x00\x01", b"reqq": 2000,
    b"complete_ago": -1, b"metadata_size": 1234, b"upload_only": 1,
}


def ext(payload: dict, ext_id: int = 0) -> bytes:
    body = bytes([20, ext_id]) + (bencodepy.encode(payload) if isinstance(payload, dict)
                                  else payload)
    return len(body).to_bytes(4, "big") + body


def msg(msg_id: int, payload: bytes = b"") -> bytes:
    return (len(payload) + 1).to_bytes(4, "big") + bytes([msg_id]) + payload


def messages(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


HANDSHAKE_BYTES = b"\x13BitTorrent protocol" + bytes(8) + b"i" * 20 + b"-XX0000-" + b"r" * 12


# -- address pools ----------------------------------------------------------------------------
def test_outbound_pool_is_random_unique_and_inside_its_network():
    pool = AddressPool(OUTBOUND_NET)
    drawn = [pool.next() for _ in range(5000)]
    assert len(set(drawn)) == len(drawn)
    net = ipaddress.IPv4Network(OUTBOUND_NET)
    ints = [int(ipaddress.IPv4Address(a)) for a in drawn]
    assert all(ipaddress.IPv4Address(a) in net for a in drawn)
    steps = [b - a for a, b in zip(ints, ints[1:])]
    assert sum(1 for s in steps if s == 1) < 5  # not sequential
    assert len({i >> 16 for i in ints}) > 40  # spread over the whole /10
    assert drawn[:10] != [AddressPool(OUTBOUND_NET).next() for _ in range(10)]  # per node


def test_a_small_pool_is_a_permutation_then_exhausted():
    pool = AddressPool("127.200.0.0/28", key=b"k")
    drawn = [pool.next() for _ in range(14)]
    assert sorted(drawn, key=ipaddress.IPv4Address) == [f"127.200.0.{i}" for i in range(1, 15)]
    assert drawn != sorted(drawn, key=ipaddress.IPv4Address)
    with pytest.raises(NodeError, match="exhausted"):
        pool.next()


def test_a_wrapping_pool_never_stops():
    pool = AddressPool("127.200.0.0/29", wrap=True)
    assert len({pool.next() for _ in range(100)}) == 6
    assert "127.1.2.3" in AddressPool(INBOUND_NET) and "127.0.0.1" not in AddressPool(INBOUND_NET)


# -- endpoint caps ----------------------------------------------------------------------------
def test_per_torrent_cap_evicts_the_least_recently_useful_idle_endpoint():
    table = EndpointTable(per_torrent=3, total=100)
    for i in range(3):
        assert table.admit(("out", "t", f"o{i}", 1), "t") == []
    table.touch(("out", "t", "o0", 1))
    table.busy(("out", "t", "o1", 1), +1)
    assert table.admit(("out", "t", "o3", 1), "t") == [("out", "t", "o2", 1)]
    assert table.count("t") == 3 and table.evicted == 1
    table.busy(("out", "t", "o0", 1), +1)
    table.busy(("out", "t", "o3", 1), +1)
    with pytest.raises(NodeError, match="busy"):
        table.admit(("out", "t", "o4", 1), "t")
    assert table.refused == 1 and len(table) == 3
    assert table.admit(("out", "u", "o0", 1), "u") == []  # another torrent has room


def test_node_cap_evicts_across_torrents_and_refuses_when_all_are_busy():
    table = EndpointTable(per_torrent=10, total=4)
    for i in range(4):
        table.admit(("out", f"t{i}", "o", 1), f"t{i}")
    assert table.admit(("out", "t9", "o", 1), "t9") == [("out", "t0", "o", 1)]
    for key in [("out", f"t{i}", "o", 1) for i in (1, 2, 3)] + [("out", "t9", "o", 1)]:
        table.busy(key, +1)
    with pytest.raises(NodeError):
        table.admit(("out", "t8", "o", 1), "t8")
    assert len(table) == 4


# -- the extension handshake ------------------------------------------------------------------
def test_clean_ext_handshake_keeps_only_what_obt_needs():
    payload, ids = clean_ext_handshake(bencodepy.encode(LT_EXT))
    assert bencodepy.decode(payload) == {
        b"m": {b"upload_only": 3, b"ut_metadata": 2}, b"reqq": 2000,
        b"metadata_size": 1234, b"upload_only": 1,
    }
    assert ids == {2, 3}
    assert clean_ext_handshake(b"not bencode") is None
    assert clean_ext_handshake(bencodepy.encode([1, 2])) is None
    odd = {b"m": {b"ut_metadata": b"x", b"upload_only": 999}, b"reqq": b"a", b"ipv6": b"\0" * 16}
    assert bencodepy.decode(clean_ext_handshake(bencodepy.encode(odd))[0]) == {b"m": {}}


def test_outgoing_filter_rewrites_the_first_message_then_copies():
    ours = ExtIds()
    wire = WireFilter(HANDSHAKE, follow=False, ours=ours)
    later = msg(5, b"\xff") + ext(LT_EXT) + msg(7, b"x" * 100)  # copied as is
    out = wire.feed(HANDSHAKE_BYTES + ext(LT_EXT) + later)
    assert out.startswith(HANDSHAKE_BYTES) and out.endswith(later)
    first = messages(out[HANDSHAKE:len(out) - len(later)])[0]
    assert b"yourip" not in first and b"ut_holepunch" not in first and b"1:p" not in first
    assert ours.ids == {2, 3} and wire.rewritten == 1
    chunk = b"anything" * 1000
    assert wire.feed(chunk) is chunk  # a plain copy from here on


def test_outgoing_filter_without_extensions_copies_from_the_first_message():
    wire = WireFilter(20, follow=False, ours=ExtIds())
    data = b"p" * 20 + msg(14) + ext(LT_EXT)
    assert wire.feed(data) == data


def test_incoming_filter_cleans_every_handshake_and_drops_unadvertised_extensions():
    ours = ExtIds()
    ours.ids = frozenset({2, 3})
    wire = WireFilter(HANDSHAKE, follow=True, ours=ours)
    punch = bytes([1, 0]) + bytes([127, 0, 0, 1]) + (22).to_bytes(2, "big")
    piece = msg(7, bytes(8) + b"d" * 16384)
    stream = (HANDSHAKE_BYTES + ext(LT_EXT) + ext(punch, 4) + piece + msg(0)
              + b"\0\0\0\0" + ext(LT_EXT) + ext(b"d1:ai1ee", 2) + ext(punch, 4)
              + ext(b"x", 7) + piece)
    out = wire.feed(stream)
    got = messages(out[HANDSHAKE:])
    assert [m[:2] for m in got if m[:1] == b"\x14"] == [b"\x14\x00", b"\x14\x00", b"\x14\x02"]
    assert all(b"ut_holepunch" not in m and b"yourip" not in m for m in got)
    assert got.count(piece[4:]) == 2 and b"" in got  # pieces and keep-alives pass
    assert wire.dropped == 3 and wire.rewritten == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=40))
def test_filters_give_the_same_bytes_however_the_stream_is_cut(cuts):
    ours = ExtIds()
    ours.ids = frozenset({2})
    stream = (HANDSHAKE_BYTES + ext(LT_EXT) + msg(7, b"z" * 700) + ext(b"q", 4)
              + ext(b"d1:ai1ee", 2) + ext(LT_EXT) + msg(1) + b"\0\0\0\0" + msg(4, b"abcd"))
    for follow in (True, False):
        whole = WireFilter(HANDSHAKE, follow=follow, ours=ours).feed(stream)
        wire, out, pos = WireFilter(HANDSHAKE, follow=follow, ours=ours), [], 0
        for cut in cuts * 20:
            out.append(wire.feed(stream[pos:pos + cut]))
            pos += cut
            if pos >= len(stream):
                break
        out.append(wire.feed(stream[pos:]))
        assert b"".join(out) == whole


def test_an_oversized_extension_handshake_is_a_wire_error():
    wire = WireFilter(0, follow=True, ours=ExtIds())
    with pytest.raises(WireError):
        wire.feed((MAX_EXT_HANDSHAKE + 1).to_bytes(4, "big") + b"\x14\x00")


def test_a_garbage_extension_handshake_is_dropped():
    wire = WireFilter(0, follow=True, ours=ExtIds())
    assert wire.feed(ext(b"garbage") + msg(2)) == msg(2) and wire.dropped == 1
