"""Waiting on a tor's publication: a service's first stored upload, and its counting as
published; when that tor exits or restarts, every waiter is told instead of left hanging."""

from __future__ import annotations

import asyncio

import pytest

from onionshare_bt.errors import Timeout, TorError
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tor.publication import Publication

A, B = onion_from_pubkey(bytes(32)), onion_from_pubkey(bytes([1]) * 32)


def test_the_first_stored_upload_ends_that_wait_and_the_last_answer_the_other():
    async def run() -> None:
        pub = Publication()
        pub.started(A, "$H1")
        pub.started(A, "$H2")
        first = asyncio.create_task(pub.wait_first_upload(A, 5))
        full = asyncio.create_task(pub.wait_published(A, 5))
        await asyncio.sleep(0)
        pub.stored(A, "$H1")
        await first  # returns: one descriptor is on an HSDir
        await asyncio.sleep(0.01)
        assert not full.done()  # the upload to $H2 is under way
        pub.failed(A, "$H2", "UPLOAD_REJECTED")
        assert await full is True
        with pytest.raises(Timeout, match="not published within 0.01 s"):
            await pub.wait_first_upload(B, 0.01)
        assert await pub.wait_published(B, 0.01) is False
        assert pub._first == {} and pub._full == {}

    asyncio.run(run())


def test_when_tor_goes_every_waiter_is_told():
    async def run() -> None:
        pub = Publication()
        waits = [asyncio.create_task(pub.wait_first_upload(A, 60)),
                 asyncio.create_task(pub.wait_published(A, 60)),
                 asyncio.create_task(pub.wait_published(B, 60))]
        await asyncio.sleep(0)
        pub.fail_all("tor restarted while publishing")
        for wait in waits:
            with pytest.raises(TorError, match="tor restarted while publishing"):
                await wait
        assert pub._first == {} and pub._full == {}

    asyncio.run(run())


def test_counts_put_a_queued_service_apart_and_a_forgotten_one_back_to_unstored():
    pub = Publication(clock=lambda: 0.0)
    pub.started(A, "$H1")
    pub.stored(A, "$H1")
    assert pub.counts([A, B], queued=lambda a: a == B) == {
        "published": 1, "uploading": 0, "unstored": 0, "queued": 1}
    pub.forget(A)
    assert pub.counts([A, B], queued=lambda a: False)["unstored"] == 2
