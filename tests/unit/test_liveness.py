"""The node's liveness core (pure): silent paths, stalled downloads and why, loop lag."""

from __future__ import annotations

from onionshare_bt.liveness import LagMeter, Liveness

SILENCE, STALL = 30.0, 120.0


def test_a_path_whose_peer_sends_nothing_for_the_window_is_dead():
    live = Liveness(SILENCE, STALL)
    assert live.silent_paths(0.0, [("p", 100, 1)]) == set()
    assert live.silent_paths(29.0, [("p", 100, 1)]) == set()
    assert live.silent_paths(30.0, [("p", 100, 1)]) == {"p"}
    # judged again only after another whole window of silence
    assert live.silent_paths(32.0, [("p", 100, 1)]) == set()
    assert live.silent_paths(60.0, [("p", 100, 1)]) == {"p"}


def test_any_byte_from_the_peer_keeps_a_path_alive():
    live = Liveness(SILENCE, STALL)
    live.silent_paths(0.0, [("p", 100, 1)])
    for t, down in ((10.0, 104), (20.0, 108), (30.0, 112), (40.0, 116)):  # keep-alives
        assert live.silent_paths(t, [("p", down, 1)]) == set()
    assert live.silent_paths(69.0, [("p", 116, 1)]) == set()
    assert live.silent_paths(70.0, [("p", 116, 1)]) == {"p"}


def test_a_path_without_a_connection_is_not_judged_and_its_clock_restarts():
    live = Liveness(SILENCE, STALL)
    live.silent_paths(0.0, [("p", 5, 1)])
    assert live.silent_paths(25.0, [("p", 5, 0)]) == set()  # its connection ended
    live.silent_paths(26.0, [("p", 5, 1)])  # a new one, nothing through it yet
    assert live.silent_paths(55.0, [("p", 5, 1)]) == set()
    assert live.silent_paths(56.0, [("p", 5, 1)]) == {"p"}


def test_paths_not_given_are_forgotten():
    live = Liveness(SILENCE, STALL)
    live.silent_paths(0.0, [("p", 5, 1), ("q", 7, 1)])
    live.silent_paths(10.0, [("q", 7, 1)])  # p is gone (its torrent was removed)
    assert live.silent_paths(35.0, [("p", 5, 1), ("q", 7, 1)]) == {"q"}  # p starts afresh


def test_a_moving_download_has_no_reason_and_no_kick():
    live = Liveness(SILENCE, STALL)
    for t in range(0, 100, 2):
        verdict = live.look(float(t), "d", t * 1000, 2)
        assert verdict.reason is None and not verdict.stalled and not verdict.kick


def test_losing_every_peer_says_so_at_once_and_announces_again():
    live = Liveness(SILENCE, STALL)
    live.look(0.0, "d", 1000, 2)
    live.look(2.0, "d", 2000, 2)
    verdict = live.look(4.0, "d", 2000, 0)
    assert verdict.kick and not verdict.stalled
    assert verdict.reason == "2 peers lost; no peer connected"
    assert not live.look(6.0, "d", 2000, 0).kick  # once, not at every look


def test_a_silent_download_says_for_how_long_and_how_many_connections_were_closed():
    live = Liveness(SILENCE, STALL)
    live.look(0.0, "d", 1000, 1)
    assert live.look(9.0, "d", 1000, 1).reason is None
    live.closed("d", 1)
    verdict = live.look(31.0, "d", 1000, 0)
    assert verdict.reason == ("no data from any peer for 31 s; 1 peer lost; "
                              "1 silent connection closed; no peer connected")
    # progress clears the story
    assert live.look(33.0, "d", 5000, 1).reason is None
    assert live.look(35.0, "d", 9000, 1).reason is None


def test_a_download_is_stalled_after_the_stall_timeout_and_kicked_at_most_every_window():
    live = Liveness(SILENCE, stall=8.0)  # a test node's stall_timeout
    assert live.kick_every == SILENCE  # an announce may take longer than 8 s
    live.look(0.0, "d", 1000, 1)
    assert not live.look(6.0, "d", 1000, 1).stalled
    first = live.look(8.0, "d", 1000, 1)
    assert first.stalled and first.kick
    kicks = [live.look(float(t), "d", 1000, 1).kick for t in range(10, 40, 2)]
    assert kicks.count(True) == 1 and kicks.index(True) == (38 - 10) // 2  # at t=38
    assert live.look(40.0, "d", 1001, 1) == live.look(40.0, "d", 1001, 1)
    assert not live.look(42.0, "d", 1001, 1).stalled


def test_a_hash_failure_is_no_progress_and_what_follows_it_is():
    live = Liveness(SILENCE, STALL)
    live.look(0.0, "d", 5000, 1)
    live.look(5.0, "d", 4000, 1)  # a piece failed its check: verified bytes went down
    assert live.look(12.0, "d", 4000, 1).reason == "no data from any peer for 12 s"
    assert live.look(14.0, "d", 4500, 1).reason is None  # verified pieces arrive again


def test_removed_downloads_are_forgotten():
    live = Liveness(SILENCE, STALL)
    live.look(0.0, "d", 1, 1)
    live.look(0.0, "e", 1, 1)
    live.keep({"e"})
    assert live.look(50.0, "d", 1, 1).reason is None  # d starts afresh
    assert live.look(50.0, "e", 1, 1).reason == "no data from any peer for 50 s"


def test_lag_meter_keeps_the_worst_ever_and_the_worst_recent():
    meter = LagMeter(window=60.0)
    assert meter.max == 0.0 and meter.recent(0.0) == 0.0
    meter.record(1.0, 0.002)
    meter.record(2.0, 0.300)
    meter.record(3.0, 0.010)
    assert meter.max == 0.300 and meter.recent(3.0) == 0.300
    meter.record(61.0, 0.005)
    assert meter.recent(62.5) == 0.010  # 0.300 at t=2 left the window
    assert meter.recent(200.0) == 0.0
    assert meter.max == 0.300
    for t in range(1000):  # a long quiet run keeps the deque short
        meter.record(300.0 + t * 0.1, 0.001)
    assert len(meter._recent) <= 2
