"""obt: onion-only BitTorrent. Every byte between peers travels over Tor v3 onion services."""

__version__ = "0.1.0"
