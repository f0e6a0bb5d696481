"""Pure parts of the bridges: address pools, the handshake check, path counters.

No sockets, no clock. The driver is :mod:`.bridge`.
"""

from __future__ import annotations

import dataclasses
import ipaddress

#: BitTorrent handshake: pstrlen, pstr, 8 reserved bytes, then the 20-byte info-hash
PROTOCOL = b"\x13BitTorrent protocol"
HANDSHAKE_PREFIX = len(PROTOCOL) + 8 + 20


def handshake_info_hash(prefix: bytes) -> bytes | None:
    """The info-hash in the first 48 bytes of a BitTorrent handshake, or None if it is not one."""
    if len(prefix) != HANDSHAKE_PREFIX or not prefix.startswith(PROTOCOL):
        return None
    return prefix[len(PROTOCOL) + 8 :]


class AddressPool:
    """Hands out loopback addresses from a network, each once, in order.

    Outbound endpoints come from 127.64.0.0/10 (never reused for another onion within a
    node's life); inbound sources from 127.1.0.0/16 (a fresh one per connection, wrapping).

    :param network: the pool
    :param start: offset of the first address handed out
    :param wrap: start again at the beginning when exhausted (else raise)
    """

    def __init__(self, network: str, start: int = 1, wrap: bool = False) -> None:
        self._net = ipaddress.IPv4Network(network)
        self._next = start
        self._wrap = wrap

    def next(self) -> str:
        if self._next >= self._net.num_addresses - 1:
            if not self._wrap:
                raise RuntimeError(f"loopback address pool {self._net} exhausted")
            self._next = 1
        addr = self._net.network_address + self._next
        self._next += 1
        return str(addr)

    def __contains__(self, host: str) -> bool:
        try:
            return ipaddress.IPv4Address(host) in self._net
        except ValueError:
            return False


OUTBOUND_NET = "127.64.0.0/10"
INBOUND_NET = "127.1.0.0/16"


@dataclasses.dataclass
class PathCounters:
    """Bytes through one bridge path.

    ``down`` counts bytes from the remote peer towards our libtorrent, ``up`` the reverse.

    :param direction: ``out`` (we dialled the onion) or ``in`` (the peer reached our onion)
    :param onion: the remote onion for outbound paths; our own listener for inbound
    """

    torrent_id: str
    direction: str
    onion: str
    port: int
    endpoint: str
    down: int = 0
    up: int = 0
    connections: int = 0
    active: int = 0
    dialing: int = 0
    failures: int = 0
    last_error: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
