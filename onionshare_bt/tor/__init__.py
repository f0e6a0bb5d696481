"""Everything obt does with Tor; the only package that imports stem, dials SOCKS or
speaks HTTP through Tor.

- :mod:`.network`: which network to join (public, or a testnet's ``network.json``).
- :mod:`.torrc`: finding tor, torrc texts, what tor accepts (pure helpers).
- :mod:`.process`: :class:`~.process.TorProcess`, a tor process of ours: launch, the
  stem controller, bootstrap, stop.
- :mod:`.client`: :class:`~.client.TorClient`, the node's own tor (a process): onion
  services (``ADD_ONION``), their publication, ``NEWNYM``.
- :mod:`.uploads`: when an onion service counts as published (its descriptor uploads, pure).
- :mod:`.publication`: waiting on it (a service's first stored upload, its publication),
  fed by the client's ``HS_DESC`` events; waiters told when tor goes.
- :mod:`.publisher`: stored onion services published again a few at a time.
- :mod:`.reach`: when to have tor forget stale onion-client state (``NEWNYM``, pure).
- :mod:`.stale`: a tor an earlier run left on the data dir.
- :mod:`.relay`: the relay's separate tor process (a :class:`~.process.TorProcess` too).
- :mod:`.socks`: asyncio SOCKS5 dialling through tor, with tor's reply codes in words (the
  one SOCKS client and the one table of its errors).
- :mod:`.http`: :class:`~.http.OnionHTTP`, HTTP to onion services over :mod:`.socks`
  (isolated circuits, no cookies, no redirects, capped replies).

Onion addresses are parsed in :mod:`onionshare_bt.onion` (pure, below this package); the
private test network is :mod:`onionshare_bt.testnet` (above it).

Submodules are imported explicitly; importing this package loads nothing heavy.
"""
