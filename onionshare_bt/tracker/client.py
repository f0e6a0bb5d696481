"""The tracker protocol's client side: a share's .torrent and its announce, over HTTP
through Tor (:class:`~onionshare_bt.tor.http.OnionHTTP`, which owns the SOCKS dialling,
the retries, the caps and the circuit isolation)."""

from __future__ import annotations

import urllib.parse

from ..errors import MalformedReply, Refused
from ..tor.http import OnionHTTP
from ..uri import ShareURI
from . import core

__all__ = ["MAX_TORRENT", "TrackerClient"]

#: the largest .torrent fetched from a share's tracker
MAX_TORRENT = 32 * 1024 * 1024


class TrackerClient(OnionHTTP):
    """HTTP over Tor, and the tracker's two requests on top of it.

    :param socks: as :class:`~onionshare_bt.tor.http.OnionHTTP`
    """

    async def fetch_torrent(self, uri: ShareURI, timeout: float) -> bytes:
        """GET the share's .torrent.

        :raises NotFound: 404 (wrong token or withdrawn share)
        :raises OnionUnreachable: the onion answered nothing before the deadline
        """
        return await self.get(str(uri), timeout, MAX_TORRENT)

    async def announce(
        self, uri: ShareURI, params: dict[str, str | bytes | int], timeout: float
    ) -> core.Reply:
        """Announce to the share's tracker and return its onion peers.

        :raises Refused: the tracker said ``failure reason``
        :raises MalformedReply: the reply is not a usable announce reply
        """
        query = urllib.parse.urlencode(params, safe="")
        body = await self.get(f"{uri.announce_url}?{query}", timeout, core.MAX_REPLY)
        try:
            return core.parse_reply(body)
        except core.ReplyError as exc:
            raise (Refused if exc.refused else MalformedReply)(str(exc)) from exc
