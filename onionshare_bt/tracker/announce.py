"""One announce, as the tracker took it in (:func:`.core.parse_announce` makes it)."""

from __future__ import annotations

import dataclasses

__all__ = ["Announce"]


@dataclasses.dataclass(frozen=True)
class Announce:
    """An announce; ``onion`` is empty for an observer (``port`` 0) and for an unreachable
    client (``port`` > 0): neither is ever listed."""

    info_hash: bytes
    peer_id: bytes
    onion: str  # 56 chars, no ".onion"
    port: int
    uploaded: int
    downloaded: int
    left: int
    event: str
    numwant: int

    @property
    def unreachable(self) -> bool:
        """A client nobody can dial (a port but no onion): a standard client."""
        return not self.onion and self.port > 0
