"""cast/wire.py: a relay can neither change, forge nor reorder a page unseen."""

from __future__ import annotations

import dataclasses

import pytest

from onionshare_bt.cast.ogg import FLAG_BOS, Page
from onionshare_bt.cast.wire import Checker, FrameReader, Signer, WireError, frame


def stream(signer: Signer, n: int = 6, serial: int = 5) -> list[Page]:
    pages = [Page.build(b"OpusHead", granule=0, serial=serial, sequence=0, flags=FLAG_BOS),
             Page.build(b"OpusTags", granule=0, serial=serial, sequence=1)]
    pages += [Page.build(bytes([i]) * 80, granule=960 * i, serial=serial, sequence=i + 1)
              for i in range(1, n - 1)]
    return [signer.sign(p) for p in pages]


def test_signed_frames_read_back_whatever_the_pieces():
    signer = Signer()
    pages = stream(signer)
    data = b"".join(frame(p) for p in pages)
    for step in (1, 13, 64, 91, len(data)):
        reader, got = FrameReader(signer.public), []
        for i in range(0, len(data), step):
            got += reader.feed(data[i:i + step])
        assert got == pages and [p.sig for p in got] == [p.sig for p in pages]


def test_a_changed_page_or_a_signature_of_another_broadcast_is_refused():
    signer = Signer()
    pages = stream(signer)
    tampered = bytearray(frame(pages[3]))
    tampered[40] ^= 0xFF  # a byte of the audio changed on the way
    forged = Page.build(b"\x00" * 80, granule=pages[3].granule, serial=5,
                        sequence=pages[3].sequence)
    with pytest.raises(WireError, match="did not sign"):
        FrameReader(signer.public).feed(frame(dataclasses.replace(forged, sig=pages[3].sig)))
    with pytest.raises(WireError):  # a flipped byte: its CRC fails first
        FrameReader(signer.public).feed(bytes(tampered))
    other = Signer()
    with pytest.raises(WireError, match="did not sign"):
        FrameReader(signer.public).feed(frame(other.sign(forged)))
    with pytest.raises(WireError, match="public key"):
        FrameReader(b"short")
    with pytest.raises(ValueError, match="unsigned"):
        frame(forged)


def test_the_order_is_checked_and_overlap_after_a_rejoin_is_dropped():
    signer = Signer()
    pages = stream(signer, n=8)
    check = Checker()
    assert [check.accept(p, fresh=(i == 0)) for i, p in enumerate(pages[:5])] == [True] * 5
    # a new server: headers again (dropped), then an overlap (dropped), then new pages,
    # with one page it never sent (counted)
    again = pages[:2] + [pages[4], pages[6], pages[7]]
    assert [check.accept(p, fresh=True) for p in again] == [False, False, False, True, True]
    assert check.skipped == 1 and check.last == pages[7].sequence
    with pytest.raises(WireError, match="twice"):
        check.accept(pages[6], fresh=False)


def test_headers_unlike_the_first_ones_or_another_stream_are_refused():
    signer = Signer()
    pages = stream(signer)
    check = Checker()
    for page in pages[:4]:
        check.accept(page, fresh=False)
    changed = signer.sign(Page.build(b"OpusTags-other", granule=0, serial=5, sequence=1))
    with pytest.raises(WireError, match="headers"):
        check.accept(changed, fresh=True)
    with pytest.raises(WireError, match="another logical stream"):
        check.accept(signer.sign(Page.build(b"x", granule=9600, serial=6, sequence=9)),
                     fresh=True)
