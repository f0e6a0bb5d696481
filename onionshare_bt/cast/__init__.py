"""Live audio over onions: a broadcaster and listeners who relay to listeners.

- :mod:`.ogg`: Ogg pages read off a byte stream, each checked (pure).
- :mod:`.core`: the backlog every server keeps and the broadcaster's relay tree (pure).
"""
