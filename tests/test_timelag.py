"""mqwatch.agent.timelag: dating committed offsets from a history of end offsets, table-driven."""

from __future__ import annotations

import math

import pytest

from mqwatch.agent.timelag import CAUGHT_UP, EXTRAPOLATED, INTERPOLATED, LOWER_BOUND, OffsetTimeline

# End offset seen at each collection time: 100 at t=0, still 100 at t=10, 130 at t=20, 160 at t=30.
HISTORY = [(0, 100), (10, 100), (20, 130), (30, 160)]
NOW = 40.0


def timeline(history=HISTORY, max_points=120):
    t = OffsetTimeline(max_points)
    for at, end in history:
        t.observe("p", end, at)
    return t


CASES = [
    # (name, committed, method, seconds, error bound)
    ("caught-up", 160, CAUGHT_UP, 0.0, 0.0),
    ("past-the-end-is-caught-up", 170, CAUGHT_UP, 0.0, 0.0),
    # Offset 100 appeared after end 100 was last seen (t=10) and by t=20: 1/30 into that gap.
    ("first-record-of-a-burst", 100, INTERPOLATED, NOW - (10 + 10 / 30), 10.0),
    ("last-record-of-a-burst", 129, INTERPOLATED, NOW - 20, 10.0),
    ("next-burst", 145, INTERPOLATED, NOW - (20 + 10 * 16 / 30), 10.0),
    # Older than the history: 60 records per 30 s => offset 70 is 15 s before t=0.
    ("older-than-history-extrapolated", 70, EXTRAPOLATED, NOW + 15, 15.0),
]


@pytest.mark.parametrize("name,committed,method,seconds,error", CASES, ids=[c[0] for c in CASES])
def test_estimate(name, committed, method, seconds, error):
    est = timeline().estimate("p", committed, NOW)
    assert est.method == method
    assert est.seconds == pytest.approx(seconds)
    assert est.error_seconds == pytest.approx(error)


def test_true_age_lies_within_the_error_bound():
    """Records arrive one per second; collections every 7 s. Every estimate is within its bound."""
    t = OffsetTimeline()
    for at in range(0, 71, 7):
        t.observe("p", at, float(at))  # end offset = records produced so far = seconds elapsed
    for committed in range(0, 70):
        est = t.estimate("p", committed, 80.0)
        true_age = 80.0 - committed  # record `committed` arrived at t=committed..committed+1
        assert abs(est.seconds - true_age) <= est.error_seconds + 1, committed


def test_no_history_means_no_estimate_and_a_single_point_gives_a_lower_bound():
    t = OffsetTimeline()
    assert t.estimate("p", 5, 100.0) is None
    t.observe("p", 50, 90.0)
    est = t.estimate("p", 5, 100.0)
    assert (est.method, est.seconds, est.error_seconds) == (LOWER_BOUND, 10.0, math.inf)


def test_idle_partition_keeps_no_rate_and_never_goes_negative():
    t = timeline([(0, 100), (10, 100), (20, 100)])
    est = t.estimate("p", 40, 30.0)
    assert est.method == LOWER_BOUND and est.seconds == 30.0
    assert t.estimate("p", 100, 30.0).seconds == 0.0
    assert t.estimate("p", 99, 5.0).seconds >= 0.0  # a clock before the observations never yields < 0


def test_recreated_partition_clears_old_dates():
    t = timeline()
    t.observe("p", 3, 35.0)  # the end went down: a new partition with the same name
    est = t.estimate("p", 1, NOW)
    assert est.method == LOWER_BOUND and est.seconds == pytest.approx(NOW - 35.0)


def test_history_is_bounded_and_vanished_keys_are_forgotten():
    t = OffsetTimeline(max_points=5)
    for i in range(50):
        t.observe("p", i * 10, float(i))
    assert t.points("p") == 5
    t.observe("q", 1, 0.0)
    t.retain(["q"])
    assert t.points("p") == 0 and t.points("q") == 1
