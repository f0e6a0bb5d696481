"""Play while it arrives: each file of a torrent served over HTTP on loopback.

- :mod:`.core`: pure: byte ranges (RFC 9110 ``Range``), where a file's bytes lie in the
  torrent's pieces (hybrid v1+v2 torrents align every file to a piece with pad files), which
  pieces each reader wants by when (:class:`~.core.Planner`), content types.
- :mod:`.pieces`: the engine side: piece deadlines applied to libtorrent (through
  :class:`~onionshare_bt.engine.session.Engine`), waiting for a piece, reading verified
  bytes from disk.
- :mod:`.server`: the aiohttp driver on 127.0.0.1 (tokens, ``206``/``416``/``HEAD``).
- :mod:`.player`: which media player ``obt play`` starts, and how.

A read never asks libtorrent for data: it waits until ``have_piece`` holds for every piece
under the range, then reads the file on disk and checks each piece's SHA-1 once, so bytes
still on their way to the disk are never served.
"""
