"""Live audio over onions: a broadcaster and listeners who relay to listeners.

- :mod:`.ogg`: Ogg pages read off a byte stream, each checked (pure).
- :mod:`.core`: the backlog every server keeps and the broadcaster's relay tree (pure).
- :mod:`.wire`: pages signed by the broadcaster, checked by every listener (pure).
- :mod:`.feed`: one server of a broadcast: its backlog and the listeners it serves.
- :mod:`.protocol`: what the servers say to each other; shared web helpers.
- :mod:`.broadcast`: ``obt cast``: ffmpeg, the signed pages, the tree, the onion.
- :mod:`.listening`: ``obt listen``: join, pull, check, relay, re-join.
- :mod:`.service`: :class:`~.service.CastService`, the part the node builds.
"""
