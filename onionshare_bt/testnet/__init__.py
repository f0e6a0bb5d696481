"""A private Tor network on 127.0.0.1, for tests, benchmarks and the demo (``obt testnet``).

Not part of a node: a node only reads the ``network.json`` a testnet writes
(:class:`onionshare_bt.tor.network.Network`). Built on :mod:`onionshare_bt.tor` (finding tor,
torrc texts, stem), never the other way round.

- :mod:`.net`: :class:`~.net.Testnet`, 3 directory authorities and a few non-exit relays:
  ``up()``, ``down()``, ``status()``.
- :mod:`.layout`: the network's layout and torrc texts (pure).
- :mod:`.keys`: identity keys, generated once and cached between runs.
- :mod:`.watch`: waiting, driven by events, until a fresh network is usable.
- :mod:`.delay`: delaying proxies in front of the ORPorts (opt-in latency).
"""

from onionshare_bt.testnet.net import Testnet

__all__ = ["Testnet"]
