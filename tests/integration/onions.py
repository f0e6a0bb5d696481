"""Onion services for the integration tier: an address per key, no network, no Tor."""

from __future__ import annotations

import hashlib
import secrets

from onionshare_bt.onion import onion_from_pubkey


class FakeOnions:
    """Onion services as a share needs them: an address per key, no network."""

    socks_address = ("127.0.0.1", 9)

    def __init__(self) -> None:
        self.published: dict[str, dict] = {}

    async def add_onion(self, ports, key=None, *, await_publication=True, timeout=60.0):
        key = key or secrets.token_hex(32)
        address = onion_from_pubkey(hashlib.sha256(key.encode()).digest())
        self.published[address] = ports
        return address, key

    def restore_onion(self, address: str, ports, key: str) -> None:
        self.published[address.removesuffix(".onion")] = ports

    async def remove_onion(self, address: str) -> None:
        self.published.pop(address.removesuffix(".onion"), None)
