"""A service that restarted its tor is reached again soon: when an onion this tor reached
lately fails, the node has tor forget its stale onion-client state (``NEWNYM``), at most once
a minute; an onion never reached, or lost for long, is just offline and changes nothing."""

from __future__ import annotations

import asyncio

from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tor.client import TorClient
from onionshare_bt.tor.network import Network
from onionshare_bt.tor.reach import INTERVAL, WINDOW, Reach

A, B = onion_from_pubkey(bytes(32)), onion_from_pubkey(bytes([1]) * 32)


def test_a_failure_of_an_onion_reached_lately_purges_at_most_once_an_interval():
    now = [100.0]
    reach = Reach(lambda: now[0])
    assert reach.failed(A) is None  # never reached: offline, nothing stale
    reach.reached(A)
    now[0] += 30
    assert reach.failed(A) == 30.0
    now[0] += INTERVAL - 1
    reach.reached(B)
    assert reach.failed(A) is None and reach.failed(B) is None  # one purge serves all
    now[0] += 1
    assert reach.failed(B) == 1.0  # reached a second before
    assert reach.purges == 2


def test_an_onion_lost_for_longer_than_the_window_is_offline_not_stale():
    now = [0.0]
    reach = Reach(lambda: now[0])
    reach.reached(A)
    now[0] += WINDOW + 1
    assert reach.failed(A) is None and reach.purges == 0
    reach.reached(A)  # reached again: a new window
    assert reach.failed(A) == 0.0


def test_the_onions_remembered_are_capped_least_recent_first():
    reach = Reach(lambda: 0.0, cap=2, interval=0.0)
    for onion in (A, B, A, "c" * 56):
        reach.reached(onion)
    assert reach.failed(B) is None  # forgotten: A and c were reached after it
    assert reach.failed(A) == 0.0


class _Alive:
    pid = 4242

    @staticmethod
    def poll():
        return None


class _Controller:
    def __init__(self) -> None:
        self.signals: list[object] = []

    def signal(self, sig) -> None:
        self.signals.append(sig)


def test_the_tor_client_sends_newnym_for_a_stale_onion_only(tmp_path):
    tor = TorClient(tmp_path / "tor", Network.public())
    controller = _Controller()
    tor._proc, tor._controller = _Alive(), controller

    async def run() -> None:
        await tor.failed(A)  # never reached through this tor
        assert controller.signals == []
        tor.reached(A)
        await tor.failed(A)
        assert [str(s) for s in controller.signals] == ["NEWNYM"]
        await tor.failed(A)  # within the interval: tor is not asked again
        assert len(controller.signals) == 1

    asyncio.run(run())
