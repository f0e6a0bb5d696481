"""Everything obt does with Tor; the only package that imports stem.

- :mod:`.onion`: v3 onion addresses (pure).
- :mod:`.network`: which network to join (public, or a testnet's ``network.json``).
- :mod:`.client`: :class:`~.client.TorClient`, the node's own tor: bootstrap, onion
  services (``ADD_ONION``), status.
- :mod:`.socks`: asyncio SOCKS5 dialling through tor, with onion-service error codes.
- :mod:`.testnet`: :class:`~.testnet.Testnet`, a private Tor network on 127.0.0.1
  (with :mod:`.testnet_config`, :mod:`.testnet_keys`, :mod:`.testnet_watch`).

Submodules are imported explicitly; importing this package loads nothing heavy.
"""
