"""The relay ledger and ratio gate (pure)."""

from onionshare_bt.relay.core import (
    Allowance, Ledger, Sample, advance, count_downloads, rate_cap,
)


def test_ledger_counts_each_byte_once_across_relay_restarts():
    ledger = Ledger()
    ledger, added = advance(ledger, Sample("boot-1", 1000))
    assert added == 1000 and ledger.relayed == 1000
    ledger, added = advance(ledger, Sample("boot-1", 1500))
    assert added == 500 and ledger.relayed == 1500
    ledger, added = advance(ledger, Sample("boot-1", 1500))  # nothing new
    assert added == 0
    ledger, added = advance(ledger, Sample("boot-2", 200))  # the relay restarted from zero
    assert added == 200 and ledger.relayed == 1700
    ledger, added = advance(ledger, Sample("boot-2", 100))  # counter went back: a reset
    assert added == 100 and ledger.relayed == 1800


def test_allowance_is_free_base_plus_ratio_times_relayed():
    a = Allowance(free_base=100, ratio=1.5, relayed=40, used=150)
    assert (a.total, a.remaining, a.exhausted) == (160, 10, False)
    assert Allowance(100, 1.0, 0, 100).exhausted
    assert Allowance(100, 0.0, 10**9, 99).total == 100  # ratio 0: only the free base
    assert "100 + 1.5 × 40 = 160" in a.as_dict()["formula"]


def test_download_counting_counts_every_session_byte_once():
    last, added = count_downloads({}, {"a": 500})
    assert added == 500  # session counters start at zero: all of it is new
    last, added = count_downloads(last, {"a": 800, "b": 50})
    assert added == 350
    last, added = count_downloads(last, {"a": 100, "b": 60})  # a's counter was reset
    assert added == 110


def test_rate_cap_closes_in_on_the_allowance():
    assert rate_cap(10**9, 1.0) == 0
    assert rate_cap(1_000_000, 1.0) == 1_000_000
    assert rate_cap(0, 1.0) == 16 * 1024
