"""The ratio gate's rate cap against a model of libtorrent's rate limiter (pure).

The model has the two ways libtorrent holds credit that it may spend at once, both
measured on the product (tests/tor/test_relay.py): its limiter banks up to 3 s of the
limit while the peers take less, and a peer's request for bandwidth collects its share of
the limit for up to 20 ticks of 0.5 s before it is granted in one piece. Peers have
unlimited data to send; the node samples every second, or late.
"""

from __future__ import annotations

import dataclasses

import pytest

from onionshare_bt.relay.core import (
    LATE, LIMITER_BANK, NO_CAP_ABOVE, RATE_FLOOR, REOPEN_CREDIT, Allowance, gate_closed,
    rate_cap,
)

TICK = 0.5
TTL = 20
MB = 1024 * 1024


@dataclasses.dataclass
class Request:
    assigned: int = 0
    ttl: int = TTL


def overshoot(cap, allowance: int, peers: int, intervals: list[float],
              stagger: int = 7) -> int:
    """Bytes downloaded past ``allowance`` when the node sets the cap ``cap(remaining,
    interval)`` at every sample (``intervals`` apart, cycled) and closes the gate (drops
    the peers) once the allowance is used up."""
    limit, bank, used, t, next_sample, i = 0, 0, 0, 0.0, 0.0, 0
    # peers join a tick apart, and their requests run out of rounds at different times
    requests = [Request(ttl=TTL - (p * stagger) % TTL) for p in range(peers)]
    while True:
        if t >= next_sample:
            if used >= allowance:
                return used - allowance
            limit = cap(allowance - used, 1.0)
            next_sample = t + intervals[i % len(intervals)]
            i += 1
        # bandwidth_channel::update_quota
        if limit:
            bank = min(bank + int(limit * TICK), 3 * limit)
        # bw_request::assign_bandwidth, for each waiting request
        for r in requests:
            share = bank // len(requests) if limit else 1 << 40
            r.assigned += share
            bank -= share if limit else 0
            r.ttl -= 1
            if r.ttl == 0 or not limit:  # granted: read at once
                used += r.assigned
                r.assigned, r.ttl = 0, TTL
        t += TICK


def node_cap(remaining: int, interval: float) -> int:
    return rate_cap(remaining, interval)


def old_cap(remaining: int, interval: float) -> int:
    """The cap before the fix: remaining over one interval, floor 16 KiB."""
    if remaining > 64 * MB:
        return 0
    return max(16 * 1024, int(remaining / interval))


#: what the cap lets past the allowance, at most (the Tor tier's bound, tests/tor/
#: test_relay.py): the credit the limiter holds at the cap's floor (LIMITER_BANK seconds of
#: it, 104 KiB), and credit still held from the higher caps of the seconds before (in this
#: model up to 240 KB, for the largest allowance that is capped and 3 peers, 2 s intervals)
BOUND = 256 * 1024


@pytest.mark.parametrize("allowance", [100_000, 3_700_000, 20 * MB, NO_CAP_ABOVE])
@pytest.mark.parametrize("peers", [1, 2, 3, 8])
@pytest.mark.parametrize("intervals", [[1.0], [1.0, 2.0], [2.0]])
@pytest.mark.parametrize("stagger", [1, 7])
def test_the_cap_keeps_the_download_within_the_allowance(allowance, peers, intervals, stagger):
    assert overshoot(node_cap, allowance, peers, intervals, stagger) <= BOUND


def test_the_model_finds_the_old_cap_overshooting_by_megabytes():
    """The cap of one interval, as before: the limiter's held credit goes past."""
    assert overshoot(old_cap, 3_700_000, 2, [1.0]) > 1_000_000
    assert overshoot(old_cap, 20 * MB, 2, [1.0]) > 5 * MB


def test_rate_cap_is_what_remains_over_the_held_credit_and_the_interval():
    assert rate_cap(NO_CAP_ABOVE + 1, 1.0) == 0
    assert rate_cap(NO_CAP_ABOVE, 1.0) == int(NO_CAP_ABOVE / (LIMITER_BANK + LATE))
    assert rate_cap(1_500_000, 1.0) == 100_000
    assert rate_cap(0, 1.0) == RATE_FLOOR
    assert rate_cap(10, 1.0, floor=1) == 1
    assert rate_cap(3_000_000, 0.0) == int(3_000_000 / (LIMITER_BANK + LATE * 0.1))


def test_the_gate_closes_when_used_up_and_opens_on_enough_credit():
    def allowance(remaining: int) -> Allowance:
        return Allowance(free_base=10 * MB, ratio=1.0, relayed=0, used=10 * MB - remaining)

    needed = 5 * MB
    assert gate_closed(False, allowance(0), needed)
    assert gate_closed(True, allowance(0), needed)
    assert not gate_closed(False, allowance(1), needed)  # open until used up
    # closed: a trickle of credit does not reconnect the peers for a few bytes
    assert gate_closed(True, allowance(REOPEN_CREDIT - 1), needed)
    assert not gate_closed(True, allowance(REOPEN_CREDIT), needed)
    # ... unless it is all the torrent still needs
    assert not gate_closed(True, allowance(1000), 1000)
    assert gate_closed(True, allowance(999), 1000)
    assert not gate_closed(True, allowance(10), 0)  # nothing needed: nothing to hold
