"""HTTP over Tor: GET and POST to onion services through the node's tor (aiohttp on
:mod:`.socks`). Every part that speaks HTTP to another node uses :class:`OnionHTTP`: the
tracker client, the trust walk and search, mirror sync, release fetches.

Every request has a deadline; transient onion-service failures (descriptor not yet
published, introduction or rendezvous failed) are retried with backoff until it passes.

Everything that answers is untrusted, so the client:

- keeps no cookies (``DummyCookieJar``): one jar for every onion would carry a cookie set
  by one tracker (``Domain=onion``) to every other onion, a supercookie linking them all;
- never follows a redirect: a 3xx is a :class:`Refused` naming the status;
- asks for no compression and decodes none (a compressed reply is malformed), so the size
  cap is a cap on what is read;
- caps every reply before parsing it: a declared ``Content-Length`` over the cap is refused
  before any byte of the body is read, and a longer body stops being read at the cap;
- reports every failure as one line of text without control characters (tor's SOCKS
  replies in the words of :data:`.socks.REPLIES`);
- isolates circuits: every request goes through Tor's SOCKS port with a username and
  password naming its destination onion and the first two segments of its path (one share's
  ``/private/<token>``, a node's ``/node`` or ``/public/<token>``), so tor carries requests
  for two shares behind one onion (a mirror) on two circuits, and the onion cannot tell
  that both came from one node.

Names are never resolved here: :class:`SocksConnector` hands them to tor as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.client_proto import ResponseHandler

from ..errors import (
    BadOnionAddress, MalformedReply, NotFound, OnionUnreachable, Refused, Timeout, TorError,
)
from ..onion import parse_onion
from ..text import safe_text
from . import socks

__all__ = ["ATTEMPT_TIMEOUT", "MAX_ERROR_BODY", "MAX_SESSIONS", "OnionHTTP", "SocksConnector",
           "isolation_key"]

log = logging.getLogger(__name__)

#: bytes of an error reply read to find its ``{"error": ...}`` text
MAX_ERROR_BODY = 4096
#: seconds one GET may take before it is given up and tried again on a fresh stream
ATTEMPT_TIMEOUT = 45.0
#: isolated client sessions kept open at once (the least recently used is closed)
MAX_SESSIONS = 32
#: seconds one SOCKS connect may take when the session sets no connect timeout
_CONNECT_TIMEOUT = 60.0


class SocksSource(socks.Watch, Protocol):
    """Whatever knows tor's SOCKS address as it is now, and is told how streams to onions
    went (:class:`.client.TorClient`)."""

    socks_address: tuple[str, int]


class OnionHTTP:
    """Talk HTTP to onion services.

    :param socks: the tor to go through (its SOCKS address is read for each new session, so
      a tor restarted in place is followed after :meth:`close`), a fixed SOCKS address, or
      None to connect directly (loopback tests only)
    """

    def __init__(self, socks: SocksSource | tuple[str, int] | None) -> None:
        self._socks = socks
        self._sessions: dict[str, aiohttp.ClientSession] = {}  # isolation key -> session
        self._started = False

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    async def get(self, url: str, timeout: float, limit: int) -> bytes:
        """GET any URL on an onion (a share's .torrent, other nodes' ``/node`` and
        catalogues), size-capped.

        :raises NotFound: 404
        :raises Refused: any other status than 200 (with the reply's ``error`` text if any)
        :raises MalformedReply: a compressed reply, or one longer than ``limit``
        :raises OnionUnreachable: no answer before the deadline
        """
        return await self._request(url, timeout, limit)

    async def post(self, url: str, body: bytes, timeout: float, limit: int,
                   headers: Callable[[], dict[str, str]] | None = None) -> bytes:
        """POST a JSON body (a mirror's sync call; it is idempotent, so retried), size-capped.

        :param headers: called before each attempt for extra headers (a fresh credential
          per attempt: the origin refuses a replayed one)
        :raises NotFound: 404
        :raises Refused: any other status than 200 (with the reply's ``error`` text if any)
        :raises OnionUnreachable: no answer before the deadline
        """
        return await self._request(url, timeout, limit, body, headers)

    @contextlib.asynccontextmanager
    async def stream(self, url: str, timeout: float) -> AsyncIterator[aiohttp.StreamReader]:
        """GET a reply that does not end (a live broadcast) and hand over its body as it
        comes. One attempt: the status within **timeout** seconds; the reading is the
        caller's, under its own deadlines (a read fails with :class:`aiohttp.ClientError`
        or :class:`ConnectionError` when the server goes).

        :raises NotFound, Refused, OnionUnreachable: as :meth:`get`, before the body
        """
        http = self._session(url)
        endless = aiohttp.ClientTimeout(total=None, sock_connect=None, sock_read=None)
        try:
            resp = await asyncio.wait_for(
                http.get(url, allow_redirects=False, timeout=endless), timeout)
        except TimeoutError as exc:
            await self._unanswered(url)
            raise OnionUnreachable(f"no answer from {_host(url)} within {timeout:.0f} s") from exc
        except (socks.SocksError, Timeout, BadOnionAddress, TorError, aiohttp.ClientError,
                OSError) as exc:
            raise _failure(url, exc) from exc
        try:
            if resp.status == 404:
                raise NotFound()
            if resp.status != 200:
                raise Refused(f"{_host(url)} answered HTTP {resp.status}"
                              f"{await _error_text(resp)}")
            yield resp.content
        finally:
            resp.close()

    def _session(self, url: str) -> aiohttp.ClientSession:
        """The client session (its own SOCKS credentials, so its own circuits) for ``url``."""
        if not self._started:
            raise RuntimeError(f"{type(self).__name__} used before start() or after close()")
        key = isolation_key(url)
        session = self._sessions.pop(key, None)
        if session is None:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = next(iter(self._sessions))
                stale = self._sessions.pop(oldest)
                asyncio.get_running_loop().create_task(stale.close())
            session = self._new_session(key)
        self._sessions[key] = session  # most recently used last
        return session

    def _new_session(self, key: str) -> aiohttp.ClientSession:
        if isinstance(self._socks, tuple):
            connector: aiohttp.TCPConnector = SocksConnector(self._socks, isolation=key)
        elif self._socks is not None:
            connector = SocksConnector(self._socks.socks_address, isolation=key,
                                       watch=self._socks)
        else:
            connector = aiohttp.TCPConnector()
        return aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": ""},
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            raise_for_status=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        )

    async def _request(self, url: str, timeout: float, limit: int, body: bytes | None = None,
                       headers: Callable[[], dict[str, str]] | None = None) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.5
        while True:
            remaining = max(0.1, deadline - loop.time())
            # one attempt may hang on introduction points that died with the service's
            # old tor; a fresh stream after ATTEMPT_TIMEOUT gets tor to try the new ones
            attempt = remaining if body is not None else min(remaining, ATTEMPT_TIMEOUT)
            try:
                extra = headers() if headers is not None else {}
                return await asyncio.wait_for(self._once(url, limit, body, extra), attempt)
            except TimeoutError as exc:
                await self._unanswered(url)  # cut short: the SOCKS dial could not say so
                if loop.time() + delay >= deadline:
                    raise OnionUnreachable(
                        f"no answer from {_host(url)} within {timeout:.0f} s"
                    ) from exc
                log.debug("retrying %s: attempt timed out", _host(url))
            except (OnionUnreachable, Timeout) as exc:
                if loop.time() + delay >= deadline:
                    if isinstance(exc, Timeout):
                        raise OnionUnreachable(
                            f"no answer from {_host(url)} within {timeout:.0f} s"
                        ) from exc
                    raise
                log.debug("retrying %s: %s", _host(url), exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _unanswered(self, url: str) -> None:
        host = urllib.parse.urlsplit(url).hostname or ""
        if host.endswith(".onion") and not isinstance(self._socks, tuple | None):
            with contextlib.suppress(BadOnionAddress):
                await self._socks.failed(parse_onion(host))

    async def _once(self, url: str, limit: int, body: bytes | None = None,
                    extra: dict[str, str] | None = None) -> bytes:
        http = self._session(url)
        if body is None:
            request = http.get(url, allow_redirects=False)
        else:
            request = http.post(url, data=body, allow_redirects=False,
                                headers={"Content-Type": "application/json", **(extra or {})})
        try:
            async with request as resp:
                if resp.status == 404:
                    raise NotFound()
                if 300 <= resp.status < 400:
                    raise Refused(f"{_host(url)} answered with a redirect (HTTP {resp.status});"
                                  " obt does not follow redirects")
                if resp.status != 200:
                    raise Refused(f"{_host(url)} answered HTTP {resp.status}"
                                  f"{await _error_text(resp)}")
                return await _read_capped(resp, limit)
        except (socks.SocksError, Timeout, asyncio.TimeoutError, BadOnionAddress, TorError,
                aiohttp.ClientError) as exc:
            raise _failure(url, exc) from exc


def _failure(url: str, exc: BaseException) -> Exception:
    """A failed request as one of obt's errors, in one line."""
    if isinstance(exc, socks.SocksError):  # tor answered: the onion cannot be reached
        return OnionUnreachable(f"{_host(url)}: {exc.reason}")
    if isinstance(exc, Timeout | asyncio.TimeoutError):
        return Timeout(f"{_host(url)}: timed out")
    if isinstance(exc, BadOnionAddress):  # what tor would answer with 0xF6
        return OnionUnreachable(f"{_host(url)}: {socks.REPLIES[0xF6]}")
    if isinstance(exc, TorError):  # tor's SOCKS port is unusable
        return OnionUnreachable(f"{_host(url)}: {exc.message}")
    return OnionUnreachable(f"{_host(url)}: {safe_text(str(exc), 200)}")


class SocksConnector(aiohttp.TCPConnector):
    """aiohttp's connector, dialling every host through tor's SOCKS port with
    :func:`.socks.open_connection` (the name travels to tor unresolved).

    :param socks_address: tor's SocksPort, ``(host, port)``
    :param isolation: the circuit isolation key of every stream it opens
    :param watch: told how each stream to an onion went (:func:`.socks.open_connection`)
    """

    def __init__(self, socks_address: tuple[str, int], isolation: str | None = None,
                 watch: socks.Watch | None = None) -> None:
        super().__init__(resolver=_Unresolved())
        self._socks, self._isolation, self._watch = socks_address, isolation, watch

    async def _wrap_create_connection(self, *args: Any, addr_infos: list, req: Any,
                                      timeout: aiohttp.ClientTimeout, **kwargs: Any
                                      ) -> tuple[asyncio.Transport, ResponseHandler]:
        # aiohttp's one hook between naming the destination and opening a socket to it
        if kwargs.get("ssl"):
            raise TorError("obt speaks plain HTTP to onion services (no TLS)")
        host, port = addr_infos[0][4][:2]
        reader, writer = await socks.open_connection(
            self._socks, host, port, timeout=timeout.sock_connect or _CONNECT_TIMEOUT,
            isolation=self._isolation, watch=self._watch)
        transport = writer.transport
        protocol = _Handler(self._loop, writer)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        return transport, protocol


class _Handler(ResponseHandler):
    """aiohttp's response protocol holding the SOCKS stream's writer: a writer that is
    garbage-collected closes its transport, the one aiohttp now reads from."""

    def __init__(self, loop: asyncio.AbstractEventLoop, writer: asyncio.StreamWriter) -> None:
        super().__init__(loop)
        self._writer = writer


class _Unresolved(AbstractResolver):
    """A resolver that resolves nothing: the name goes to tor as it is."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[dict]:
        return [{"hostname": host, "host": host, "port": port, "family": family,
                 "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


def isolation_key(url: str) -> str:
    """The circuit isolation key of a request: a hash of its host and first two path
    segments (a hash, so that no token travels even to our own tor)."""
    parts = urllib.parse.urlsplit(url)
    segments = [p for p in parts.path.split("/") if p][:2]
    name = "/".join([parts.hostname or "", *segments])
    return hashlib.sha256(name.encode()).hexdigest()[:32]


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or :class:`MalformedReply` as soon as it is known to pass ``limit``."""
    if resp.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        raise MalformedReply("the reply is compressed; obt asked for no compression")
    if resp.content_length is not None and resp.content_length > limit:
        raise MalformedReply(f"reply larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise MalformedReply(f"reply larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _error_text(resp: aiohttp.ClientResponse) -> str:
    """``": <error>"`` from a small JSON error reply (``{"error": ...}``), else ``""``."""
    if resp.content_length is None or resp.content_length > MAX_ERROR_BODY:
        return ""
    try:
        data = json.loads(await resp.read())  # Content-Length is at most MAX_ERROR_BODY
    except (ValueError, RecursionError, aiohttp.ClientError, asyncio.TimeoutError):
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    return f": {safe_text(error, 200)}" if isinstance(error, str) else ""


def _host(url: str) -> str:
    host = urllib.parse.urlsplit(url).hostname or "?"
    return host[:12] + "….onion" if host.endswith(".onion") else host
