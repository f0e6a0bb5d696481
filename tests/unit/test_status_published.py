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


def test_an_upload_counts_once_and_a_removed_onion_no_longer(tmp_path):
    tor = TorClient(tmp_path / "tor", Network.public())
    tor._loop = asyncio.new_event_loop()
    try:
        assert tor.count_published([A, B]) == 0
        tor._uploaded(A)
        tor._uploaded(A)  # one event per HSDir
        assert tor.count_published([A, B]) == 1
        asyncio.run(tor.remove_onion(A))  # tor not running: only forgotten
        assert tor.count_published([A, B]) == 0
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


class _Controller:
    """Records ADD_ONION and DEL_ONION as tor would see them."""

    def __init__(self):
        self.added: list[str] = []
        self.removed: list[str] = []

    def create_ephemeral_hidden_service(self, targets, key_type, key_content, **_):
        self.added.append(key_content)  # the tests' keys are the addresses
        return type("Reply", (), {"service_id": key_content})()

    def remove_ephemeral_hidden_service(self, service_id):
        self.removed.append(service_id)
        return True


def test_stored_onions_are_republished_a_few_at_a_time(tmp_path, monkeypatch):
    """A fresh tor given many stored keys at once lost every upload of the burst: each
    republication waits for its first upload (or its slot's time-out) before the next."""
    from onionshare_bt.tor import client as module

    addresses = [onion_from_pubkey(bytes([i]) * 32) for i in range(10)]

    async def run():
        tor = TorClient(tmp_path / "tor", Network.public())
        tor._loop, tor._proc, tor._controller = asyncio.get_running_loop(), _Alive(), _Controller()
        monkeypatch.setattr(module, "_split_key", lambda key: ("ED25519-V3", key))

        async def settle():
            for _ in range(20):
                await asyncio.sleep(0.01)

        for a in addresses:
            tor.republish(a, {6881: ("127.0.0.1", 1)}, a)
        await settle()
        assert tor._controller.added == addresses[:module.REPUBLISH_WINDOW]
        tor._uploaded(addresses[0])
        await settle()
        assert tor._controller.added == addresses[:module.REPUBLISH_WINDOW + 1]
        await tor.remove_onion(addresses[-1])  # still queued: it never reaches tor
        for a in addresses[1:-1]:
            tor._uploaded(a)
            await settle()
        assert tor._controller.added == addresses[:-1]
        assert tor.count_published(addresses) == len(addresses) - 1
        assert not tor._queued

    asyncio.run(run())


def test_a_service_without_an_upload_is_added_again_then_given_up(tmp_path, monkeypatch):
    """Tor retries a lost first upload only at its next scheduled one: the node adds the
    service again (same key) while it waits, and removes it if none comes in time."""
    from onionshare_bt.errors import Timeout
    from onionshare_bt.tor import client as module

    address = onion_from_pubkey(bytes([7]) * 32)
    monkeypatch.setattr(module, "KICK_AFTER", 0.1)
    monkeypatch.setattr(module, "_split_key", lambda key: ("ED25519-V3", key))

    async def run(upload_after: float | None):
        tor = TorClient(tmp_path / "tor", Network.public())
        tor._loop, tor._proc, tor._controller = asyncio.get_running_loop(), _Alive(), _Controller()
        if upload_after is not None:
            asyncio.get_running_loop().call_later(upload_after, tor._uploaded, address)
        try:
            await tor.add_onion({80: ("127.0.0.1", 1)}, address, timeout=0.35)
        except Timeout:
            return tor._controller, False
        return tor._controller, True

    ctl, ok = asyncio.run(run(upload_after=0.15))  # after one re-add
    assert ok and ctl.added == [address, address] and ctl.removed == [address]
    ctl, ok = asyncio.run(run(upload_after=None))  # never: given up and removed
    assert not ok and len(ctl.added) >= 3 and ctl.removed[-1] == address
    assert len(ctl.removed) == len(ctl.added)


def test_a_republication_tor_did_not_answer_is_tried_again(tmp_path, monkeypatch):
    """A restored node's ADD_ONION once went unanswered for 30 s: the onion must not stay
    unpublished for good."""
    import time

    from onionshare_bt.tor import client as module

    address = onion_from_pubkey(bytes([9]) * 32)
    monkeypatch.setattr(module, "CONTROL_TIMEOUT", 0.1)
    monkeypatch.setattr(module, "REPUBLISH_RETRY", 0.01)
    monkeypatch.setattr(module, "_split_key", lambda key: ("ED25519-V3", key))

    class Slow(_Controller):
        def create_ephemeral_hidden_service(self, *args, **kwargs):
            if not self.added:
                time.sleep(0.3)  # the first one outlasts the control time-out
            return super().create_ephemeral_hidden_service(*args, **kwargs)

    async def run():
        tor = TorClient(tmp_path / "tor", Network.public())
        tor._loop, tor._proc, tor._controller = asyncio.get_running_loop(), _Alive(), Slow()
        tor.republish(address, {80: ("127.0.0.1", 1)}, address)
        for _ in range(100):
            if len(tor._controller.added) >= 2:
                break
            await asyncio.sleep(0.02)
        tor._uploaded(address)
        await asyncio.sleep(0.05)
        return tor

    tor = asyncio.run(run())
    assert len(tor._controller.added) >= 2 and tor.count_published([address]) == 1
    assert not tor._queued
