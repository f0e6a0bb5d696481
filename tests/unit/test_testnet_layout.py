"""The private network's voting schedule: the interval a network is built with is the one
its authorities vote at (so its onion-service time periods last 24 of them), and the first
vote still comes a few seconds after launch."""

from __future__ import annotations

import pytest

from onionshare_bt.errors import UsageError
from onionshare_bt.testnet import Testnet, layout


def _options(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if line and line[0] != "#")


@pytest.mark.parametrize("interval", [layout.VOTING_INTERVAL, layout.LONG_VOTING_INTERVAL])
def test_the_authorities_vote_at_the_networks_interval_from_the_first_vote(tmp_path, interval):
    (auth, *_) = layout.plan(tmp_path, 17000, 2)
    text = layout.authority_torrc(auth, [], offset=3, bandwidths=tmp_path / "bw",
                                  empty=tmp_path / "empty", interval=interval)
    options = _options(text)
    assert options["V3AuthVotingInterval"] == str(interval)
    assert options["TestingV3AuthInitialVotingInterval"] == str(interval)
    assert options["TestingV3AuthVotingStartOffset"] == "3"


@pytest.mark.parametrize("interval", [layout.VOTING_INTERVAL, layout.LONG_VOTING_INTERVAL])
def test_the_first_vote_comes_a_few_seconds_after_launch(interval):
    lead = layout.FIRST_VOTE_AFTER + layout.VOTE_DELAY + layout.DIST_DELAY
    for now in range(1_800_000_000, 1_800_000_000 + 2 * interval):
        offset = layout.voting_offset(now, interval)
        assert 0 <= offset < interval
        # tor's intervals start at multiples of the interval plus the offset
        assert (now + lead - offset) % interval == 0


def test_the_long_interval_makes_a_period_longer_than_a_restart_and_its_sampling():
    assert 24 * layout.LONG_VOTING_INTERVAL >= 15 * 60 > 24 * layout.VOTING_INTERVAL


@pytest.mark.parametrize("interval", [5, 301])
def test_an_interval_out_of_range_is_refused(tmp_path, interval):
    with pytest.raises(UsageError):
        Testnet(tmp_path, voting_interval=interval)
