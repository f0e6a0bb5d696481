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
    _reader, writer, sent = await ahead.take("aa", "o1", 6881, HS[:48])
    assert sent and bytes(writer.written) == HS and not writer.closed
    assert dial.asked == [("o1", "aa", 0, None)]  # the path's own circuits
    assert await ahead.take("aa", "o1", 6881, HS[:48]) is None  # taken once


async def test_a_stream_dialled_before_the_torrent_was_known_goes_to_the_first_path():
    dial = Dial()
    ahead = Ahead(dial)
    assert ahead.dial("o1", 6881, isolation="fetch")
    _reader, _writer, sent = await ahead.take("cc", "o1", 6881, HS[:48])
    assert not sent  # no handshake was sent on it: libtorrent's goes out
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
