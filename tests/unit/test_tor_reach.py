"""A service that restarted its tor is reached again soon: when an onion this tor reached
lately fails, the node has tor forget its stale onion-client state (``NEWNYM``) at once; an
onion not reached lately gets it after half a minute of failing, then ever more rarely; never
more than once a minute in all."""

from __future__ import annotations

import asyncio

from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tor.client import TorClient
from onionshare_bt.tor.network import Network
from onionshare_bt.tor.reach import FIRST, INTERVAL, LONGEST, WINDOW, Reach

A, B = onion_from_pubkey(bytes(32)), onion_from_pubkey(bytes([1]) * 32)


def test_a_failure_of_an_onion_reached_lately_purges_at_most_once_an_interval():
    now = [100.0]
    reach = Reach(lambda: now[0])
    assert reach.failed(A) is None  # never reached: its first failure changes nothing
    reach.reached(A)
    now[0] += 30
    assert reach.failed(A) == "reached 30 s ago"
    now[0] += INTERVAL - 1
    reach.reached(B)
    assert reach.failed(A) is None and reach.failed(B) is None  # one purge serves all
    now[0] += 1
    assert reach.failed(B) == "reached 1 s ago"
    assert reach.purges == 2


def test_an_onion_lost_for_longer_than_the_window_is_offline_not_stale():
    now = [0.0]
    reach = Reach(lambda: now[0])
    reach.reached(A)
    now[0] += WINDOW + 1
    assert reach.failed(A) is None and reach.purges == 0
    reach.reached(A)  # reached again: a new window
    assert reach.failed(A) == "reached 0 s ago"


def test_an_onion_not_reached_lately_is_purged_for_after_a_minute_then_ever_more_rarely():
    """A downloader restarted while its seeder was away never reached the seeder through
    its new tor; when the seeder comes back, tor may still refuse to ask for its new
    descriptor for 15 minutes. A dead onion costs one purge in ``LONGEST`` at most."""
    now = [0.0]
    reach = Reach(lambda: now[0])
    purges = []
    while now[0] < 3600:
        if reach.failed(A) is not None:
            purges.append(now[0])
        now[0] += 5
    assert purges[:4] == [FIRST, FIRST + 2 * FIRST, FIRST + 6 * FIRST, FIRST + 14 * FIRST]
    assert FIRST >= INTERVAL / 2
    gaps = [b - a for a, b in zip(purges, purges[1:], strict=False)]
    assert max(gaps) == LONGEST and gaps[-1] == LONGEST
    assert reach.failed(A) is None  # between purges


def test_a_stream_that_opens_ends_the_failing_spell():
    now = [0.0]
    reach = Reach(lambda: now[0], window=10.0)
    reach.failed(A)
    now[0] += FIRST - 1
    reach.reached(A)  # back: the spell is over
    now[0] += 11  # and the reach is too old to count
    assert reach.failed(A) is None  # a new spell starts here
    now[0] += FIRST - 1
    assert reach.failed(A) is None
    now[0] += 1
    assert reach.failed(A) == f"failing for {FIRST:.0f} s"


def test_many_failing_onions_still_purge_at_most_once_an_interval():
    now = [0.0]
    reach = Reach(lambda: now[0])
    onions = [onion_from_pubkey(bytes([i]) * 32) for i in range(2, 40)]
    for _ in range(int(3600 / 5)):
        for onion in onions:
            reach.failed(onion)
        now[0] += 5
    assert reach.purges <= 3600 / INTERVAL


def test_the_onions_remembered_are_capped_least_recent_first():
    reach = Reach(lambda: 0.0, cap=2, interval=0.0)
    for onion in (A, B, A, "c" * 56):
        reach.reached(onion)
    assert reach.failed(B) is None  # forgotten: A and c were reached after it
    assert reach.failed(A) == "reached 0 s ago"
    for onion in ("d" * 56, "e" * 56, "f" * 56):
        reach.failed(onion)
    assert len(reach._failing) == 2


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
        await tor.failed(A)  # never reached through this tor: its first failure
        assert controller.signals == []
        tor.reached(A)
        await tor.failed(A)
        assert [str(s) for s in controller.signals] == ["NEWNYM"]
        await tor.failed(A)  # within the interval: tor is not asked again
        assert len(controller.signals) == 1

    asyncio.run(run())
