"""A minimal asyncio SOCKS5 client for dialling through tor (RFC 1928, RFC 1929).

It always sends the destination as a domain name, so tor resolves it (and onion
addresses never touch a resolver). Tor's extended onion-service reply codes
(0xF0–0xF7) only arrive when the SocksPort carries the ``ExtendedErrors`` flag, which
:class:`~onionshare_bt.tor.client.TorClient` sets.

The first connect to a freshly published onion often fails with 0xF0 (descriptor not
found yet): pass ``retry_until`` to retry transient failures until a deadline.

Circuit isolation: tor's SocksPort isolates streams by their SOCKS username and password
(``IsolateSOCKSAuth``, on by default). Pass ``isolation`` (any text, e.g. ``peer:<torrent>``)
and streams with different keys never share a circuit, so what one share or download does
cannot be linked to another's by a relay or a peer that sees both circuits. The key is sent
as the username and password (to tor on loopback only) and is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Protocol

from onionshare_bt.errors import OnionUnreachable, Timeout, TorError
from onionshare_bt.onion import is_onion, parse_onion

__all__ = ["REPLIES", "SocksError", "TRANSIENT", "open_connection"]

log = logging.getLogger(__name__)

#: SOCKS5 reply codes (RFC 1928) and tor's extensions (tor's socks-extensions.txt), in the
#: words every message of obt uses for them (the bridges' and HTTP over Tor's alike)
REPLIES: dict[int, str] = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired (the circuit or stream timed out)",
    0x07: "command not supported",
    0x08: "address type not supported",
    0xF0: "onion service descriptor not found (the service is offline or unknown)",
    0xF1: "onion service descriptor is invalid",
    0xF2: "introduction to the onion service failed",
    0xF3: "rendezvous with the onion service failed",
    0xF4: "the onion service needs client authorization",
    0xF5: "client authorization failed",
    0xF6: "bad onion address",
    0xF7: "introduction timed out",
}

#: reply codes worth retrying until ``retry_until``
TRANSIENT = frozenset({0x01, 0x04, 0x06, 0xF0, 0xF2, 0xF3, 0xF7})

_BACKOFF_START = 0.5
_BACKOFF_CAP = 5.0


class SocksError(OnionUnreachable):
    """Tor could not open the stream."""

    def __init__(self, code: int, host: str, port: int) -> None:
        reason = REPLIES.get(code, "unknown SOCKS reply")
        super().__init__(f"cannot reach {host}:{port}: {reason} (SOCKS reply 0x{code:02x})")
        #: the SOCKS reply code
        self.code = code
        #: the code in words (:data:`REPLIES`)
        self.reason = reason


def _request(host: str, port: int) -> bytes:
    """Build a CONNECT request for a domain name."""
    name = host.encode("idna")
    if not 0 < len(name) < 256:
        raise TorError(f"host name too long for SOCKS5: {host!r}")
    return b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", port)


def _credentials(isolation: str) -> bytes:
    """An RFC 1929 username/password request carrying the isolation key."""
    key = isolation.encode()[:255]
    return b"\x01" + bytes([len(key)]) + key + bytes([len(key)]) + key


async def _handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     host: str, port: int, isolation: str | None = None) -> None:
    """Negotiate no-auth (or username/password for isolation) and CONNECT; raise on refusal."""
    wanted = 2 if isolation else 0
    writer.write(b"\x05\x01" + bytes([wanted]))
    await writer.drain()
    version, method = await reader.readexactly(2)
    if version != 5 or method != wanted:
        raise TorError(f"the SOCKS server refused method {wanted} (version {version}, "
                       f"method {method})")
    if isolation:
        writer.write(_credentials(isolation))
        await writer.drain()
        _, status = await reader.readexactly(2)
        if status != 0:
            raise TorError("the SOCKS server refused the isolation credentials")
    writer.write(_request(host, port))
    await writer.drain()
    version, code, _, atyp = await reader.readexactly(4)
    if version != 5:
        raise TorError(f"malformed SOCKS5 reply (version {version})")
    if code != 0:
        if host.endswith(".onion"):
            raise SocksError(code, host, port)
        raise TorError(f"cannot reach {host}:{port}: {REPLIES.get(code, 'unknown')} "
                       f"(SOCKS reply 0x{code:02x})")
    if atyp == 1:
        await reader.readexactly(4 + 2)
    elif atyp == 4:
        await reader.readexactly(16 + 2)
    elif atyp == 3:
        (length,) = await reader.readexactly(1)
        await reader.readexactly(length + 2)
    else:
        raise TorError(f"malformed SOCKS5 reply (address type {atyp})")


async def _attempt(socks: tuple[str, int], host: str, port: int, timeout: float,
                   isolation: str | None = None
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """One connection attempt, bounded by **timeout** seconds."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(socks[0], socks[1])
    except TimeoutError as exc:
        raise Timeout(f"tor's SOCKS port {socks[0]}:{socks[1]} did not answer") from exc
    except OSError as exc:
        raise TorError(f"cannot connect to tor's SOCKS port {socks[0]}:{socks[1]}: "
                       f"{exc.strerror or exc}") from exc
    try:
        async with asyncio.timeout(timeout):
            await _handshake(reader, writer, host, port, isolation)
    except BaseException as exc:
        writer.close()
        if isinstance(exc, TimeoutError):
            raise Timeout(f"timed out after {timeout:g} s connecting to {host}:{port}") from exc
        if isinstance(exc, asyncio.IncompleteReadError | ConnectionError):
            raise TorError(f"tor closed the SOCKS connection to {host}:{port}") from exc
        raise
    return reader, writer


def _transient(exc: Exception) -> bool:
    if isinstance(exc, SocksError):
        return exc.code in TRANSIENT
    return isinstance(exc, Timeout)


class Watch(Protocol):
    """Told how each stream to an onion went (:class:`.client.TorClient`, see :mod:`.reach`)."""

    def reached(self, onion: str) -> None: ...

    async def failed(self, onion: str) -> None: ...


async def open_connection(
    socks: tuple[str, int],
    host: str,
    port: int,
    *,
    timeout: float = 60.0,
    retry_until: float | None = None,
    isolation: str | None = None,
    watch: Watch | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP stream to **host**:**port** through tor's SOCKS5 port.

    :param socks: tor's SocksPort, ``(host, port)``
    :param host: destination host name; an onion address may omit ``.onion``
    :param port: destination port
    :param timeout: seconds allowed for one attempt
    :param retry_until: a deadline in ``loop.time()`` until which transient failures
      (descriptor not found, introduction or rendezvous failed, timeouts) are retried
      with a backoff from 0.5 s to 5 s; None tries once
    :param isolation: a circuit isolation key: streams with different keys never share a
      circuit (sent as SOCKS username and password)
    :param watch: told of each attempt to an onion that opened, or failed transiently
      (before the next attempt: it may have tor forget stale onion state)
    :returns: the stream's reader and writer
    :raises BadOnionAddress: if **host** looks like an onion address but is not valid
    :raises OnionUnreachable: if tor cannot reach an onion service (a :class:`SocksError`
      with the reply ``code``)
    :raises Timeout: if an attempt outlived its time
    :raises TorError: if tor's SOCKS port is unusable, or a non-onion host failed
    """
    onion = None
    if host.lower().endswith(".onion") or is_onion(host):
        onion = parse_onion(host)
        host = onion + ".onion"
    loop = asyncio.get_running_loop()
    delay = _BACKOFF_START
    attempts = 0
    refused: SocksError | None = None  # the last answer tor gave, if any
    while True:
        attempts += 1
        budget = timeout if retry_until is None else min(timeout, retry_until - loop.time())
        try:
            opened = await _attempt(socks, host, port, max(budget, 0.1), isolation)
            if watch is not None and onion is not None:
                watch.reached(onion)
            return opened
        except (SocksError, Timeout) as exc:
            if isinstance(exc, SocksError):
                refused = exc
            if watch is not None and onion is not None and _transient(exc):
                await watch.failed(onion)
            left = None if retry_until is None else retry_until - loop.time()
            if left is None or not _transient(exc) or left <= delay:
                # a last attempt cut short by the window says less than tor's last answer
                cut_short = isinstance(exc, Timeout) and budget < timeout
                final = refused if cut_short and refused is not None else exc
                if attempts > 1:
                    final.args = (f"{final.message} (after {attempts} attempts)",)
                if final is exc:
                    raise
                raise final from exc
            log.debug("connect to %s:%d failed (%s); retrying in %.1f s",
                      host, port, exc.message, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, _BACKOFF_CAP)
