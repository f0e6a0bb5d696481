"""The maintainer keys a node trusts for obt releases by default.

Each entry is a raw ed25519 public key as 64 hex characters (see
:func:`onionshare_bt.release.signing.parse_public_key`). Only public halves belong here.
"""

from __future__ import annotations

MAINTAINER_KEYS: tuple[str, ...] = (
    # obt release key 1. The private half is held by the maintainers offline; it is never
    # committed to this repository.
    "a20480759f9d06de862b6e6b1dd22782925c91f7e4366df10f9d6b795e7fb440",
)
