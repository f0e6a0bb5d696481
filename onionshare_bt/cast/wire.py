"""What travels between the servers of a broadcast: Ogg pages, each signed by the
broadcaster, so that no relay can change, add or reorder a single page unseen.

A frame is one Ogg page followed by the broadcaster's Ed25519 signature of it (64 bytes).
A listener learns the broadcaster's public key when it joins (from the broadcaster's own
onion, which Tor authenticates), and checks every frame whoever relays it: a relay that
sends one bad frame is a relay the listener leaves. A listener's own output is plain Ogg.

The order is the listener's to check too (:class:`Checker`): one logical stream, its
headers exactly as first seen, sequence numbers that only grow. Pages a relay drops show as
a gap in them, and are reported as such.
"""

from __future__ import annotations

import dataclasses

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .ogg import OggError, Page, page_size

__all__ = ["SIG_SIZE", "Checker", "FrameReader", "Signer", "WireError", "frame"]

SIG_SIZE = 64


class WireError(ValueError):
    """A frame a listener refuses: malformed, badly signed, or out of order."""


class Signer:
    """The broadcaster's key for one broadcast (made fresh for it, never stored)."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        #: the raw 32-byte public key listeners check frames with
        self.public = self._key.public_key().public_bytes_raw()

    def sign(self, page: Page) -> Page:
        return dataclasses.replace(page, sig=self._key.sign(page.raw))


def frame(page: Page) -> bytes:
    """A signed page as it goes on the wire."""
    if len(page.sig) != SIG_SIZE:
        raise ValueError("an unsigned page")
    return page.raw + page.sig


class FrameReader:
    """Signed pages out of a byte stream, each signature checked against **public**.

    :raises WireError: from :meth:`feed`, at the first frame that is malformed or whose
      signature does not hold
    """

    def __init__(self, public: bytes) -> None:
        try:
            self._key = Ed25519PublicKey.from_public_bytes(public)
        except ValueError as exc:
            raise WireError("not an Ed25519 public key") from exc
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Page]:
        self._buffer += data
        out: list[Page] = []
        while True:
            buffer = self._buffer
            try:
                size = page_size(buffer)
            except OggError as exc:
                raise WireError(str(exc)) from exc
            if size is None or len(buffer) < size + SIG_SIZE:
                return out
            try:
                page = Page.parse(bytes(buffer[:size]))
            except OggError as exc:
                raise WireError(str(exc)) from exc
            sig = bytes(buffer[size:size + SIG_SIZE])
            del buffer[:size + SIG_SIZE]
            try:
                self._key.verify(sig, page.raw)
            except InvalidSignature as exc:
                raise WireError("a page the broadcaster did not sign") from exc
            out.append(dataclasses.replace(page, sig=sig))


class Checker:
    """The order a listener accepts pages in, whoever it gets them from.

    :meth:`accept` returns True for a page to pass on, False for one it already has (a
    re-joined server resends the headers and may overlap), and raises for one no honest
    server would send.
    """

    def __init__(self) -> None:
        self.headers: list[Page] = []
        self.serial: int | None = None
        #: the sequence number of the last audio page accepted (-1: none yet)
        self.last = -1
        #: pages that never came (sequence numbers skipped)
        self.skipped = 0

    def accept(self, page: Page, fresh: bool) -> bool:
        """:param fresh: the first page of a server (a join or a re-join): its headers
          come again and are checked against the first ones
        :raises WireError: another stream, changed headers, or a page sent twice in one
          stream
        """
        if self.serial is None:
            self.serial = page.serial
        elif page.serial != self.serial:
            raise WireError("a page of another logical stream")
        if page.is_header:
            index = page.sequence
            if self.last >= 0 or len(self.headers) > index:
                known = next((h for h in self.headers if h.sequence == index), None)
                if known is None or known.raw != page.raw:
                    raise WireError("headers unlike the broadcast's")
                return False
            self.headers.append(page)
            return True
        if page.sequence <= self.last:
            if fresh:
                return False  # overlap with what the last server sent
            raise WireError("a page sent twice")
        if self.last >= 0:
            self.skipped += page.sequence - self.last - 1
        self.last = page.sequence
        return True
