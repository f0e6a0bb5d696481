"""The relay's rate history (pure) and its picture."""

from onionshare_bt.relay.core import RateHistory
from onionshare_bt.ui.chart import rate_svg


def test_points_are_kept_a_step_apart_and_only_the_last_ones():
    h = RateHistory(step=10, points=3)
    for t, relayed in ((0, 0), (5, 100), (10, 1000), (20, 3000), (30, 3000), (40, 2000)):
        h.add(t, relayed)
    # 5 s was too soon; the oldest fell out; a counter that went back counts as 0
    assert h.rates() == [(20, 200.0), (30, 0.0), (40, 0.0)]


def test_the_picture_needs_two_points_and_scales_to_the_fastest():
    assert "Not enough samples" in rate_svg([]) and "<svg" not in rate_svg([[1, 5]])
    svg = rate_svg([[0, 0], [10, 4096], [20, 0]])
    ys = [float(p.split(",")[1]) for p in svg.split('points="')[1].split('"')[0].split()]
    assert ys[0] == ys[2] > ys[1]  # zero at the bottom, the peak at the top
    assert "4.0 KiB/s" in svg and "<script" not in svg
