"""The relay's nickname: random per node, word-like, never naming obt (pure, no I/O).

Every relay's nickname is public in the consensus, next to its IP address. A nickname shared
by every obt node would list every obt user's address; one that starts with the product's
name would do the same. So each node draws its own, once (the driver keeps it in the relay's
data folder so that it stays the same across restarts), shaped like the nicknames people pick
by hand: a made-up word of two or three syllables, sometimes capitalised, sometimes followed
by a number.
"""

from __future__ import annotations

import random

from ..tor.torrc import MAX_NICKNAME as MAX_LENGTH
from ..tor.torrc import valid_nickname

__all__ = ["MAX_LENGTH", "PRODUCT_PREFIXES", "random_nickname", "valid_nickname"]

#: what a drawn nickname never starts with
PRODUCT_PREFIXES = ("obt", "onionshare", "onion", "share", "torrent")

_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
           "w", "z", "br", "cr", "dr", "fr", "gr", "pr", "tr", "st", "sl", "bl", "cl", "fl",
           "gl", "pl", "ch", "sh", "th", "qu")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ee", "io", "ou", "oo",
           "y")
_CODAS = ("", "", "", "", "n", "r", "l", "s", "x", "m", "k", "t", "nd", "rn", "st", "ck")


def random_nickname(rng: random.Random) -> str:
    """Draw a word-like nickname that does not start with a product name.

    :param rng: the source of randomness (``secrets.SystemRandom()`` in the node; a seeded
        ``random.Random`` in tests)
    """
    while True:
        name = _word(rng)
        if not name.lower().startswith(PRODUCT_PREFIXES) and valid_nickname(name):
            return name


def _word(rng: random.Random) -> str:
    syllables = rng.choice((2, 2, 3, 3, 3))
    word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(syllables))
    style = rng.random()
    if style < 0.45:
        word = word.capitalize()
    elif style < 0.55:
        word = word.upper()
    if rng.random() < 0.35:
        word += str(rng.randrange(1, 1000))
    return word[:MAX_LENGTH]
