"""Streams dialled ahead (:mod:`onionshare_bt.multiplex.ahead`): which path may take one,
and what a failed one means, with a fake dial (the bytes themselves are
``tests/integration/test_first_byte.py``'s)."""

from __future__ import annotations

import asyncio

import pytest

from onionshare_bt.errors import ObtError
from onionshare_bt.multiplex.ahead import Ahead

HS = b"\x13BitTorrent protocol" + bytes(8) + b"\x01" * 20 + b"-LT2000-" + b"x" * 12


class Writer:
    def __init__(self) -> None:
        self.written, self.closed = bytearray(), False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


class Dial:
    """Records each dial; a dial to an onion in ``dead`` fails."""

    def __init__(self, dead=()) -> None:
        self.asked, self.writers, self.dead = [], [], set(dead)

    async def __call__(self, onion, port, torrent_id, lane=0, isolation=None):
        self.asked.append((onion, torrent_id, lane, isolation))
        if onion in self.dead:
            raise ObtError("the onion is gone")
        writer = Writer()
        self.writers.append(writer)
        return object(), writer


async def test_a_stream_dialled_for_a_torrent_is_that_torrents_alone():
    dial = Dial()
    ahead = Ahead(dial)
    assert ahead.dial("o1", 6881, torrent_id="aa")
    assert not ahead.dial("o1", 6881, torrent_id="bb")  # one per onion and port
    ahead.handshake("o1", 6881, HS)
    assert await ahead.take("bb", "o1", 6881, HS[:48]) is None  # another torrent's path
    taken = await ahead.take("aa", "o1", 6881, HS[:48])
    assert taken.sent and taken.named is None
    assert bytes(taken.writer.written) == HS and not taken.writer.closed
    assert dial.asked == [("o1", "aa", 0, None)]  # the path's own circuits
    assert await ahead.take("aa", "o1", 6881, HS[:48]) is None  # taken once


async def test_a_stream_dialled_before_the_torrent_was_known_goes_to_the_first_path():
    dial = Dial()
    ahead = Ahead(dial)
    assert ahead.dial("o1", 6881, isolation="fetch")
    taken = await ahead.take("cc", "o1", 6881, HS[:48])
    assert not taken.sent  # no handshake was sent on it: libtorrent's goes out
    assert dial.asked == [("o1", "", 0, "fetch")]


async def test_a_handshake_that_differs_closes_the_stream():
    dial = Dial()
    ahead = Ahead(dial)
    ahead.dial("o1", 6881, torrent_id="aa")
    ahead.handshake("o1", 6881, HS)
    other = bytearray(HS[:48])
    other[27] = 0x10
    assert await ahead.take("aa", "o1", 6881, bytes(other)) is None
    assert dial.writers[0].closed


async def test_a_failed_dial_ahead_is_the_paths_failure_once_it_is_the_paths_own():
    dial = Dial(dead={"gone"})
    ahead = Ahead(dial)
    ahead.dial("gone", 6881, torrent_id="aa")
    with pytest.raises(ObtError):  # dialling again would only wait for the same failure
        await ahead.take("aa", "gone", 6881, HS[:48])
    ahead.dial("gone", 6881, isolation="fetch")  # made before the torrent was known
    assert await ahead.take("aa", "gone", 6881, HS[:48]) is None  # the path dials itself


async def test_an_unused_stream_is_closed_when_forgotten_or_at_close():
    dial = Dial()
    ahead = Ahead(dial)
    ahead.dial("o1", 6881, torrent_id="aa")
    ahead.dial("o2", 6881, torrent_id="aa")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    ahead.forget("o1", 6881)
    ahead.close()
    await asyncio.sleep(0)
    assert [w.closed for w in dial.writers] == [True, True]
    assert await ahead.take("aa", "o2", 6881, HS[:48]) is None


ALIAS = b"\x02" * 20
ALIASED = HS[:28] + ALIAS + HS[48:]  # ours, naming the share by its alias


async def test_a_handshake_naming_the_alias_stands_for_the_torrent_named_later():
    dial = Dial()
    ahead = Ahead(dial)
    ahead.dial("o1", 6881, isolation="fetch")
    ahead.handshake("o1", 6881, ALIASED)  # before the .torrent is in
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert bytes(dial.writers[0].written) == ALIASED
    ahead.name("o1", 6881, HS)  # the .torrent: libtorrent's handshake will be HS
    taken = await ahead.take("aa", "o1", 6881, HS[:48])
    assert taken.sent and taken.named == (ALIAS, HS[28:48])
    assert bytes(taken.writer.written) == ALIASED  # nothing sent twice


async def test_an_alias_is_taken_only_for_the_torrent_it_was_named_for():
    dial = Dial()
    ahead = Ahead(dial)
    ahead.dial("o1", 6881, isolation="fetch")
    ahead.handshake("o1", 6881, ALIASED)
    other = HS[:28] + b"\x03" * 20
    assert await ahead.take("aa", "o1", 6881, other) is None  # never named: closed
    assert dial.writers[0].closed


async def test_an_alias_sent_with_other_reserved_bits_than_libtorrents_is_dropped():
    dial = Dial()
    ahead = Ahead(dial)
    ahead.dial("o1", 6881, isolation="fetch")
    ahead.handshake("o1", 6881, ALIASED)
    v1 = bytearray(HS)
    v1[27] = 0x10  # libtorrent will not send what went ahead: no path may take it
    ahead.name("o1", 6881, bytes(v1))
    await asyncio.sleep(0)
    assert await ahead.take("aa", "o1", 6881, bytes(v1[:48])) is None


async def test_naming_a_stream_with_no_handshake_yet_sends_libtorrents():
    dial = Dial()
    ahead = Ahead(dial)
    ahead.dial("o1", 6881, isolation="fetch")
    ahead.name("o1", 6881, HS)
    taken = await ahead.take("aa", "o1", 6881, HS[:48])
    assert taken.sent and taken.named is None and bytes(taken.writer.written) == HS
