"""``obt node status`` tells how many onions tor has published since it started."""
import asyncio

import pytest

from onionshare_bt.cli.render import status_text
from onionshare_bt.errors import TorError
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tor.client import TorClient
from onionshare_bt.tor.network import Network

A, B = onion_from_pubkey(bytes(32)), onion_from_pubkey(bytes([1]) * 32)


def _info(onions: int, published: int) -> dict:
    return {"pid": 1, "uptime": 3.0, "version": "x", "network": "tor", "onions": onions,
            "published": published, "torrents": 1,
            "tor": {"bootstrap": {"progress": 100, "summary": "Done"},
                    "socks": ["127.0.0.1", 9050]}}


def test_the_status_line_names_onions_not_yet_published():
    assert "onions: 200 (63 not yet published)," in status_text(_info(200, 137))
    assert "onions: 200, torrents" in status_text(_info(200, 200))
    info = {**_info(200, 137), "publishing": {"published": 137, "uploading": 50,
                                              "unstored": 0, "queued": 13}}
    assert ("onions: 200 (63 not yet published: 50 uploading, 13 queued),"
            in status_text(info))


def test_an_onion_counts_once_its_last_upload_ended_and_a_removed_one_no_longer(tmp_path):
    tor = TorClient(tmp_path / "tor", Network.public())
    tor._loop = asyncio.new_event_loop()
    try:
        assert tor.publication([A, B]) == {"published": 0, "uploading": 0, "unstored": 2,
                                           "queued": 0}
        for hsdir in ("$H1", "$H2"):
            tor._publication.started(A, hsdir)
        tor._publication.stored(A, "$H1")
        assert tor.publication([A, B])["published"] == 0  # the upload to $H2 is under way
        assert tor.publication([A, B])["uploading"] == 1
        tor._publication.failed(A, "$H2", "UPLOAD_REJECTED")
        assert tor.publication([A, B])["published"] == 1
        tor._publication.stored(A, "$H2")  # a stray event changes nothing
        assert tor.publication([A, B])["published"] == 1
        asyncio.run(tor.remove_onion(A))  # tor not running: only forgotten
        assert tor.publication([A, B])["published"] == 0
    finally:
        tor._loop.close()


class _Alive:
    pid = 4242

    @staticmethod
    def poll():
        return None


def test_a_bootstrapped_tor_answers_its_status_without_a_control_round_trip(tmp_path):
    tor = TorClient(tmp_path / "tor", Network.public())
    tor._proc, tor._controller = _Alive(), object()  # any call to it would raise
    tor._status = {"progress": 100, "summary": "Done", "tag": "done", "warning": None}
    assert asyncio.run(tor.bootstrap_status())["progress"] == 100
    tor._proc.poll = lambda: 0  # exited: no stale answer
    with pytest.raises(TorError):
        asyncio.run(tor.bootstrap_status())


def test_wait_published_returns_when_the_last_upload_ends_or_false_at_its_time_limit(tmp_path):
    tor = TorClient(tmp_path / "tor", Network.public())

    async def run():
        tor._loop = asyncio.get_running_loop()
        tor._publication.started(A, "$H1")
        tor._publication.started(A, "$H2")
        waiting = asyncio.create_task(tor.wait_published(A, timeout=5))
        tor._publication.stored(A, "$H1")
        await asyncio.sleep(0.01)
        assert not waiting.done()  # one upload still under way
        tor._publication.failed(A, "$H2", "UPLOAD_REJECTED")
        assert await waiting is True
        assert await tor.wait_published(B, timeout=0.01) is False
        assert tor._publication._full == {}  # no waiter left behind

    asyncio.run(run())


class _Controller:
    """Answers ADD_ONION and DEL_ONION at once and records them."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def create_ephemeral_hidden_service(self, targets, key_type, key_content, **kwargs):
        self.calls.append("add")
        return type("Response", (), {"service_id": A, "private_key_type": key_type,
                                     "private_key": key_content})()

    def remove_ephemeral_hidden_service(self, service_id):
        self.calls.append("del")
        return True


def test_a_restored_onion_that_tor_does_not_publish_is_given_to_it_again_and_again(tmp_path):
    """The client's own wiring: the publisher's removal before another try must not count
    as the owner taking the service back (it did once: 4 of 200 onions were removed and
    never added again, shown "unstored" for good)."""
    tor = TorClient(tmp_path / "tor", Network.public())
    controller = _Controller()
    tor._proc, tor._controller = _Alive(), controller

    async def run():
        tor._loop = asyncio.get_running_loop()
        tor._publisher.slot = tor._publisher.longest_slot = 0.05
        tor.restore_onion(A, {80: ("127.0.0.1", 1)}, "ED25519-V3:abc")
        for _ in range(200):
            await asyncio.sleep(0.01)
            if controller.calls.count("add") >= 3:
                break
        assert controller.calls[:5] == ["add", "del", "add", "del", "add"]
        assert tor.publication([A])["published"] == 0
        for hsdir in ("$H1", "$H2"):
            tor._publication.started(A, hsdir)
            tor._publication.stored(A, hsdir)
        await asyncio.sleep(0.2)
        adds = controller.calls.count("add")
        await asyncio.sleep(0.2)
        assert controller.calls.count("add") == adds  # published: left alone
        assert tor.publication([A])["published"] == 1
        await tor.remove_onion(A)  # the owner takes it back: removed, never added again
        await asyncio.sleep(0.2)
        assert controller.calls[-1] == "del" and controller.calls.count("add") == adds
        await tor._publisher.close()

    asyncio.run(run())
