"""The path count of a download: grown while each path adds 15 %, settled at the first that
does not (onionshare_bt.multiplex.growth, pure)."""

from __future__ import annotations

from onionshare_bt.multiplex.growth import ADD, DROP, PathGrowth

MB = 1_000_000


class Download:
    """A made-up download whose rate is a function of its path count."""

    def __init__(self, rate_of, paths=1, size=10_000 * MB):
        self.rate_of, self.paths, self.left = rate_of, paths, size
        self.now, self.received = 0.0, 0
        self.connected = True

    def run(self, growth: PathGrowth, seconds: float, tick=0.5) -> list[str]:
        actions = []
        for _ in range(int(seconds / tick)):
            self.now += tick
            moved = int(self.rate_of(self.paths) * tick) if self.connected else 0
            self.received += moved
            self.left = max(0, self.left - moved)
            action = growth.tick(self.now, self.received, self.paths, self.connected, self.left)
            if action == ADD:
                self.paths += 1
            elif action == DROP:
                self.paths -= 1
            if action:
                actions.append(action)
        return actions


def test_grows_while_each_path_adds_and_settles_at_the_first_that_does_not():
    # 5 MB/s per path up to 3 paths, then nothing more
    dl = Download(lambda k: 5 * MB * min(k, 3))
    growth = PathGrowth(max_paths=8)
    actions = dl.run(growth, 120)
    assert actions == [ADD, ADD, ADD, DROP]
    assert growth.state == "settled" and dl.paths == 3 and growth.paths == 3
    assert [s.kept for s in growth.steps] == [True, True, False]
    assert growth.rate == 15 * MB
    assert "under 15%" in growth.reason


def test_a_path_that_adds_less_than_the_gain_is_dropped_at_once():
    dl = Download(lambda k: 4 * MB * (1 + 0.1 * (k - 1)))  # +10 % per path
    growth = PathGrowth()
    assert dl.run(growth, 60) == [ADD, DROP]
    assert dl.paths == 1 and growth.state == "settled"


def test_a_capped_rate_never_grows_past_one_probe():
    dl = Download(lambda k: 1 * MB)  # a cap elsewhere: more circuits add nothing
    growth = PathGrowth()
    dl.run(growth, 120)
    assert dl.paths == 1 and len(growth.steps) == 1 and not growth.steps[0].kept


def test_never_more_than_max_paths():
    dl = Download(lambda k: MB * k)
    growth = PathGrowth(max_paths=3)
    dl.run(growth, 120)
    assert dl.paths == 3 and growth.reason == "at the cap of 3 paths"


def test_nothing_is_measured_until_payload_flows():
    dl = Download(lambda k: 0)
    growth = PathGrowth()
    assert dl.run(growth, 60) == []
    assert growth.state == "measuring" and growth.rate is None


def test_a_new_path_is_measured_only_once_it_carries_a_connection():
    dl = Download(lambda k: 2 * MB * k)
    growth = PathGrowth(ready_timeout=30)
    assert dl.run(growth, 12) == [ADD]  # 3 s settle + two 4 s windows, then one more path
    dl.connected = False  # the new path's circuit is still being built
    assert dl.run(growth, 20) == []
    dl.connected = True
    dl.run(growth, 12)
    assert growth.steps and growth.steps[0].kept


def test_a_path_that_never_connects_is_given_up():
    dl = Download(lambda k: 2 * MB)
    growth = PathGrowth(ready_timeout=30)
    dl.run(growth, 12)
    dl.connected = False
    assert dl.run(growth, 40) == [DROP]
    assert growth.state == "settled" and "never carried" in growth.reason


def test_no_probe_near_the_end():
    dl = Download(lambda k: 5 * MB * k, size=40 * MB)  # 8 s at one path
    growth = PathGrowth()
    assert dl.run(growth, 20) == []
    assert growth.reason == "too close to the end to measure another path"


def test_describe_is_plain_data():
    dl = Download(lambda k: 5 * MB * min(k, 2))
    growth = PathGrowth()
    dl.run(growth, 60)
    out = growth.describe()
    assert out["state"] == "settled" and out["paths"] == 2
    assert [s["kept"] for s in out["steps"]] == [True, False]


class Bursty(Download):
    """A capped download whose limiter hands each new connection a second's quota at once,
    after a slow start: the rate holds still only after a while."""

    def __init__(self, cap):
        super().__init__(lambda k: cap)
        self.cap, self.since_change = cap, 0.0

    def run(self, growth, seconds, tick=0.5):
        actions = []
        for _ in range(int(seconds / tick)):
            self.now += tick
            self.since_change += tick
            rate = self.cap * min(1.0, 0.5 + self.now / 12)  # the first path's slow start
            # the new path's connection: a second's quota at once, 3.5 s after it was asked
            # for (the settle time is 3 s): it lands in the first window measured
            burst = self.cap if self.paths > 1 and 3.0 < self.since_change <= 4.0 else 0
            self.received += int((rate + burst) * tick)
            action = growth.tick(self.now, self.received, self.paths, True, 10**12)
            if action == ADD:
                self.paths += 1
                self.since_change = 0.0
            elif action == DROP:
                self.paths -= 1
            if action:
                actions.append(action)
        return actions


def test_a_burst_or_a_slow_start_is_not_taken_for_a_gain():
    dl = Bursty(1 * MB)
    growth = PathGrowth()
    assert dl.run(growth, 120) == [ADD, DROP]
    (step,) = growth.steps
    assert not step.kept and abs(step.rate_after - step.rate_before) < 0.15 * MB
