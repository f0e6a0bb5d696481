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
    """(What the cap lets past the allowance: tests/unit/test_relay_gate.py.)"""
    assert rate_cap(10**9, 1.0) == 0
    assert rate_cap(1_500_000, 1.0) == 100_000  # a fifteenth of what remains a second
    assert rate_cap(0, 1.0) == 8 * 1024


# -- the relay's nickname ---------------------------------------------------------------
def test_drawn_nicknames_are_valid_varied_and_name_no_product():
    import random

    from onionshare_bt.relay.nickname import PRODUCT_PREFIXES, random_nickname, valid_nickname

    rng = random.Random(7)
    names = [random_nickname(rng) for _ in range(3000)]
    assert all(valid_nickname(n) and 1 <= len(n) <= 19 for n in names)
    assert not any(n.lower().startswith(PRODUCT_PREFIXES) for n in names)
    assert len(set(names)) > 2900  # random per node, not one label for every obt user
    assert random_nickname(random.Random(7)) == names[0]  # pure: the rng decides


def test_valid_nickname_is_what_tor_accepts():
    from onionshare_bt.relay.nickname import valid_nickname

    assert valid_nickname("Unnamed") and valid_nickname("a" * 19)
    for bad in ("", "a" * 20, "has space", "dash-ed", "ünï", None, 42):
        assert not valid_nickname(bad), bad


def test_node_nickname_is_drawn_once_and_kept_0600(tmp_path):
    import stat

    from onionshare_bt.relay.driver import node_nickname
    from onionshare_bt.relay.nickname import valid_nickname

    relay_dir = tmp_path / "home" / "relay"
    first = node_nickname(relay_dir)
    assert valid_nickname(first) and not first.lower().startswith("obt")
    assert node_nickname(relay_dir) == first  # stable across restarts
    path = relay_dir / "nickname"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(relay_dir.stat().st_mode) == 0o700
    path.write_text("not valid!\n")  # damaged: drawn again
    assert valid_nickname(node_nickname(relay_dir))


def test_relay_without_a_configured_nickname_uses_the_drawn_one(tmp_path, monkeypatch):
    import asyncio

    from onionshare_bt.relay import driver
    from onionshare_bt.store import Store
    from onionshare_bt.tor.network import Network
    from onionshare_bt.tor.relay import RelaySettings

    monkeypatch.setattr(driver, "find_tor", lambda binary: "tor")
    monkeypatch.setattr(driver, "fingerprint_of", lambda data_dir, binary: "F" * 40)
    store = Store(tmp_path / "state.sqlite3")
    try:
        def relay(settings):
            return driver.Relay(tmp_path / "relay", Network.public(), store, settings,
                                driver.RatioSettings(), enabled=True, tor_binary=None,
                                bootstrap_timeout=1)

        drawn = relay(RelaySettings())
        asyncio.run(drawn.prepare())
        assert drawn.settings.nickname == (tmp_path / "relay" / "nickname").read_text().strip()
        chosen = relay(RelaySettings(nickname="MyOwnName"))
        asyncio.run(chosen.prepare())
        assert chosen.settings.nickname == "MyOwnName"
    finally:
        store.close()


def test_relay_torrc_carries_the_nickname_and_never_obtrelay(tmp_path):
    from onionshare_bt.tor.network import Network
    from onionshare_bt.tor.relay import RelaySettings, relay_torrc

    named = relay_torrc(tmp_path, Network.public(), 1, RelaySettings(nickname="Brailox12"))
    assert "Nickname Brailox12" in named
    unnamed = relay_torrc(tmp_path, Network.public(), 1, RelaySettings())
    assert "Nickname" not in unnamed and "obtrelay" not in unnamed
