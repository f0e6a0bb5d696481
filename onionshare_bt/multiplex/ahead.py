"""Streams dialled ahead, before libtorrent asks for them (the first byte of a download).

A download knows the share's onion before it has the .torrent; :meth:`Ahead.dial` opens a
stream to it meanwhile, on the circuits of that fetch, and :meth:`Ahead.handshake` writes
our handshake on it as soon as it is up. The share answers to an alias of its URI's token
(:func:`~.core.share_alias`) as well as to its info-hash, so the handshake goes out while
the .torrent is still on its way, and the seeder's handshake, bitfield and unchoke come
with it or right after. Once the .torrent is in, :meth:`Ahead.name` says which torrent the
alias stood for. The bridges' first outbound path to that onion then takes the stream
(:meth:`Ahead.take`) as its own dial; libtorrent's handshake, which names the info-hash,
is dropped, and the seeder's, which must name the alias, reaches libtorrent with the
info-hash in its place. The share's other onions (its .torrent names them) and new peers
an announce names are dialled ahead for one torrent, on the circuits its path's own dial
would use (:meth:`Bridges.dial_ahead <onionshare_bt.multiplex.bridge.Bridges.dial_ahead>`):
only that torrent's path takes such a stream. A stream nobody takes is closed after :data:`TTL`
seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets

from ..errors import ObtError
from .core import HANDSHAKE_PREFIX

log = logging.getLogger(__name__)

#: seconds a stream dialled ahead waits to be used, then closed (the remote bridge waits
#: 60 s for a handshake)
TTL = 30.0


@dataclasses.dataclass
class _Stream:
    """A stream dialled ahead and the handshake sent on it."""

    task: asyncio.Future
    handshake: bytes | None = None
    #: the torrent whose path alone may take it (None: the first lane-0 path to the onion)
    torrent_id: str | None = None
    #: the handshake prefix libtorrent will send, when ours named the torrent by an alias
    named: bytes | None = None


@dataclasses.dataclass(frozen=True)
class Taken:
    """A stream dialled ahead, as a path takes it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    #: our handshake went ahead on it: libtorrent's own is to be dropped
    sent: bool
    #: ``(alias, info_hash)`` when ours named the torrent by an alias: the peer's handshake
    #: must name the alias, and libtorrent is to read the info-hash in its place
    named: tuple[bytes, bytes] | None = None


class Ahead:
    """The streams dialled ahead of a node's bridges, one per (onion, port).

    :param dial: the bridges' ``dial(onion, port, torrent_id, lane, isolation=None)``
    """

    def __init__(self, dial) -> None:
        self._dial = dial
        self._streams: dict[tuple[str, int], _Stream] = {}

    def dial(self, onion: str, port: int, isolation: str | None = None,
             torrent_id: str | None = None) -> bool:
        """Dial ``onion:port`` now; nothing if a stream to it is dialled ahead already.
        Whether it dialled.

        :param isolation: on the circuits of this isolation key
        :param torrent_id: for this torrent's first path (lane 0) to the onion alone, on
          the circuits that path's own dial would use; without it and ``isolation``, on an
          isolation made for this stream
        """
        key = (onion, port)
        if key in self._streams:
            return False
        if isolation is not None:
            dial = self._dial(onion, port, "", 0, isolation=isolation)
        else:
            dial = self._dial(onion, port, torrent_id or f"ahead-{secrets.token_hex(8)}", 0)
        stream = _Stream(asyncio.ensure_future(dial), torrent_id=torrent_id)
        self._streams[key] = stream
        asyncio.get_running_loop().call_later(TTL, self._expire, key, stream)
        return True

    def handshake(self, onion: str, port: int, handshake: bytes) -> None:
        """Write ``handshake`` on the stream dialled ahead to ``onion:port`` once it is up
        (once per stream; nothing without one)."""
        stream = self._streams.get((onion, port))
        if stream is None or stream.handshake is not None:
            return
        stream.handshake = handshake
        stream.task = asyncio.ensure_future(_send_first(stream.task, handshake))

    def name(self, onion: str, port: int, handshake: bytes) -> None:
        """The torrent is known: ``handshake`` is the one libtorrent will send. The stream
        dialled ahead to ``onion:port`` gets it written if none went out yet; if ours went
        out naming an alias, it stands for this one, provided that all but the info-hash
        is the same (else the stream is closed, and the path dials again)."""
        stream = self._streams.get((onion, port))
        if stream is None:
            return
        if stream.handshake is None:
            self.handshake(onion, port, handshake)
            return
        sent, start = stream.handshake, HANDSHAKE_PREFIX - 20
        if sent[:start] == handshake[:start] and sent[:HANDSHAKE_PREFIX] != handshake[
                :HANDSHAKE_PREFIX]:
            stream.named = handshake[:HANDSHAKE_PREFIX]
        elif sent[:HANDSHAKE_PREFIX] != handshake[:HANDSHAKE_PREFIX]:
            log.info("the handshake sent ahead to %s… is not libtorrent's; dropping it",
                     onion[:8])
            self.forget(onion, port)

    def _expire(self, key: tuple[str, int], stream: _Stream) -> None:
        if self._streams.get(key) is stream:
            self.forget(*key)

    def forget(self, onion: str, port: int) -> None:
        """Close a stream dialled ahead that no path took (or stop its dial)."""
        stream = self._streams.pop((onion, port), None)
        if stream is not None:
            stream.task.cancel()  # nothing, once it is done
            stream.task.add_done_callback(_retrieve)

    async def take(self, torrent_id: str, onion: str, port: int,
                   prefix: bytes) -> Taken | None:
        """The stream dialled ahead to ``onion:port`` for a connection of ``torrent_id``
        whose handshake starts with ``prefix``. None when there is no such stream (or it is
        another torrent's), or the handshake sent on it is not this one, nor an alias's
        named for it (the stream is closed: the caller dials again).

        :raises ObtError, OSError: the dial made ahead for this torrent failed (it was
          this path's own dial); one made before the torrent was known is dialled again
        """
        key = (onion, port)
        stream = self._streams.get(key)
        if stream is None or stream.torrent_id not in (None, torrent_id):
            return None
        del self._streams[key]
        try:
            reader, writer = await stream.task
        except (ObtError, OSError) as exc:
            if stream.torrent_id is not None:
                raise
            log.info("a dial ahead to %s… failed: %s", onion[:8], exc)
            return None
        if stream.handshake is None:
            return Taken(reader, writer, sent=False)
        if stream.handshake[:HANDSHAKE_PREFIX] == prefix:
            return Taken(reader, writer, sent=True)
        if stream.named == prefix:
            start = HANDSHAKE_PREFIX - 20
            return Taken(reader, writer, sent=True,
                         named=(stream.handshake[start:HANDSHAKE_PREFIX], prefix[start:]))
        log.info("libtorrent's handshake to %s… is not the one sent ahead; dialling again",
                 onion[:8])
        writer.close()
        return None

    def close(self) -> None:
        for onion, port in list(self._streams):
            self.forget(onion, port)


async def _send_first(dial: asyncio.Future, handshake: bytes):
    """The dialled stream, with ``handshake`` written on it first."""
    try:
        reader, writer = await asyncio.shield(dial)
    except asyncio.CancelledError:
        dial.cancel()
        dial.add_done_callback(_retrieve)
        raise
    writer.write(handshake)
    return reader, writer


def _retrieve(task: asyncio.Task) -> None:
    """Read a dropped dial's outcome (so asyncio never logs it as never retrieved), and
    close the stream it may have opened after all."""
    if task.cancelled():
        return
    if task.exception() is None:
        task.result()[1].close()
