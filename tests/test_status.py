"""mqwatch.agent.status: the consumer status evaluator, table-driven.

Burrow's rules (github.com/linkedin/Burrow/wiki/Consumer-Lag-Evaluation-Rules and
core/internal/evaluator/caching.go) are cases here, named `burrow-*`. Where mqwatch decides
differently the case is named `differs-*`; agent/status.py's docstring says why for each:

- lagging is judged on the collections at which the position moved (Burrow's window is
  commits), and a flat lag, or one that rose by less than one commit's worth, is ok;
- stopped (nobody consumes) vs stalled (someone does, this partition does not move) is told
  by activity, not by the time since the last commit, which OffsetFetch does not give;
- a rewind is reported before "lag was zero in the window";
- the group's status is its worst partition's with stalled/stopped above rewound;
- a fresh agent waits for a full window, except for a consumer nobody consumes;
- allowed_lag and transaction-marker lag count as caught up.

The aliasing cases simulate a producer and a consumer in continuous time and collect at
fixed times, so that commits at 0.5x, 1x and 2x the collection interval (and intervals
that drift against it) are compared on the same consumer.
"""

from __future__ import annotations

import math

import pytest

from mqwatch.agent.status import DEFAULT_WINDOW, LAGGING, OK, REWOUND, STALLED, STOPPED, StatusTracker, worst

W = 4  # window size used by the table


def run(entries, size=W, allowed_lag=0, caught_up=None, counts=True):
    """[(position(s), lag(s)[, active])] observed in order -> the last Verdict."""
    t = StatusTracker(size, allowed_lag, positions_count_messages=counts)
    verdict = None
    for pos, lag, *active in entries:
        positions = (pos,) if isinstance(pos, int) else tuple(pos)
        lags = (lag,) * len(positions) if isinstance(lag, int) else tuple(lag)
        verdict = t.observe("g", positions, lags, active[0] if active else True, caught_up=caught_up)
    return verdict


CASES = [
    # (name, [(position(s), lag(s)[, active])], expected group status)
    ("burrow-rule1-zero-lag-in-window-is-ok", [(1, 5), (2, 0), (2, 3), (2, 4)], OK),
    ("burrow-rule1-zero-lag-even-when-stuck-now", [(2, 0), (2, 1), (2, 1), (2, 1)], OK),
    ("burrow-rule2-offset-went-back-is-rewind", [(5, 5), (6, 5), (2, 9), (3, 8)], REWOUND),
    ("burrow-rule4-offsets-not-moving-with-lag-is-stalled", [(5, 3), (5, 4), (5, 6), (5, 9)], STALLED),
    ("burrow-rule4-stalled-with-fixed-lag", [(5, 3), (5, 3), (5, 3), (5, 3)], STALLED),
    ("burrow-rule5-moving-but-falling-behind-is-lagging", [(1, 10), (3, 15), (5, 20), (7, 25)], LAGGING),
    ("burrow-rule5-lag-decreased-once-is-ok", [(1, 5), (2, 7), (6, 4), (7, 6)], OK),
    ("burrow-lag-decreasing-is-ok", [(1, 9), (3, 7), (5, 5), (7, 3)], OK),
    # issue 13: a constant lag with moving offsets keeps pace (Burrow: warning).
    ("differs-flat-lag-with-moving-offsets-is-ok", [(1, 5), (2, 5), (3, 5), (4, 5)], OK),
    ("differs-flat-lag-three-behind-committing-every-collection-is-ok", [(0, 3), (10, 3), (20, 3), (30, 3)], OK),
    # Rose by 2 while committing 10 at a time: within what the sampling phase can add.
    ("differs-rise-within-one-commit-is-ok", [(0, 5), (10, 6), (20, 7), (30, 8)], OK),
    ("rise-beyond-one-commit-is-lagging", [(0, 5), (10, 12), (20, 25), (30, 37)], LAGGING),
    ("lagging-needs-two-commit-points", [(0, 5), (0, 9), (0, 13), (4, 20)], OK),
    # Between commits the lag grows by what is produced; only the commit points are compared.
    ("commits-every-second-collection-falling-behind-is-lagging", [(0, 10), (0, 20), (6, 24), (6, 34), (12, 38)],
     LAGGING),
    ("commits-every-second-collection-keeping-pace-is-ok", [(0, 10), (0, 20), (20, 10), (20, 20), (40, 10)], OK),
    ("differs-no-members-not-moving-is-stopped", [(5, 3, False), (5, 4, False), (5, 6, False), (5, 9, False)], STOPPED),
    ("differs-rewind-wins-over-zero-lag", [(10, 0), (10, 0), (0, 10), (1, 9)], REWOUND),
    ("assign-committer-without-members-advancing-is-lagging-not-stopped",
     [(1, 5, False), (2, 8, False), (3, 11, False), (4, 14, False)], LAGGING),
    ("assign-committer-without-members-catching-up-is-ok",
     [(1, 9, False), (4, 7, False), (6, 5, False), (9, 2, False)], OK),
    ("partition-added-is-not-a-rewind", [((5,), 3), ((5, 0), 3), ((6, 1), 2), ((7, 2), 1)], OK),
    # Per partition (issue 13 item 2): the worst partition is the group's status.
    ("differs-one-stuck-partition-among-moving-ones-is-stalled",
     [((5, 1), (8, 2)), ((5, 2), (8, 2)), ((5, 3), (8, 2)), ((5, 4), (8, 2))], STALLED),
    ("one-stuck-partition-of-a-memberless-committer-is-stalled",
     [((5, 1), (8, 2), False), ((5, 2), (8, 2), False), ((5, 3), (8, 2), False), ((5, 4), (8, 2), False)], STALLED),
    ("an-idle-caught-up-partition-among-moving-ones-is-ok",
     [((5, 1), (0, 2)), ((5, 2), (0, 2)), ((5, 3), (0, 2)), ((5, 4), (0, 2))], OK),
    ("differs-stalled-outranks-rewound",
     [((5, 9), (8, 1)), ((5, 9), (8, 1)), ((5, 2), (8, 8)), ((5, 3), (8, 7))], STALLED),
    ("nothing-moves-anywhere-inactive-is-stopped",
     [((5, 1), (8, 2), False), ((5, 1), (8, 2), False), ((5, 1), (8, 2), False), ((5, 1), (8, 2), False)], STOPPED),
    # A fresh agent: the window is not full yet.
    ("fresh-active-with-lag-is-ok", [(5, 3), (5, 4)], OK),
    ("fresh-inactive-with-lag-is-stopped-at-once", [(5, 3, False)], STOPPED),
    ("fresh-inactive-that-moved-is-ok", [(5, 3, False), (6, 2, False)], OK),
    ("fresh-inactive-caught-up-is-ok", [(5, 0, False)], OK),
    ("fresh-rewind-is-reported-at-once", [(5, 3), (1, 7)], REWOUND),
    ("the-window-slides-past-a-caught-up-sample", [(2, 0), (2, 1), (2, 1), (2, 1), (2, 1)], STALLED),
    ("the-window-slides-past-a-rewind", [(5, 5), (2, 8), (3, 8), (4, 8), (5, 8)], OK),
]


@pytest.mark.parametrize("name,entries,expected", CASES, ids=[c[0] for c in CASES])
def test_rules(name, entries, expected):
    assert run(entries).status == expected


def test_empty_consumer_is_ok():
    assert StatusTracker(W).observe("g", (), (), False).status == OK


def test_partition_statuses_are_reported_in_the_order_given():
    t = StatusTracker(W)
    for i in range(W):
        v = t.observe("g", (5, 1 + i, 7), (8, 2, 0), True, partitions=(3, 1, 2))
    assert v.partitions == [STALLED, OK, OK] and v.status == STALLED


def test_worst_order():
    assert worst([OK, REWOUND, LAGGING]) == LAGGING
    assert worst([REWOUND, STALLED]) == STALLED
    assert worst([STALLED, STOPPED]) == STOPPED
    assert worst([]) == OK


# ---- allowed_lag and transaction markers ------------------------------------------------------

ALLOWED = [
    # (name, entries, allowed_lag, expected)
    ("stuck-at-or-below-allowed-lag-is-ok", [(5, 3)] * W, 3, OK),
    ("stuck-above-allowed-lag-is-stalled", [(5, 4)] * W, 3, STALLED),
    ("memberless-stuck-at-allowed-lag-is-ok-not-stopped", [(5, 2, False)] * W, 2, OK),
    ("one-sample-at-allowed-lag-in-the-window-is-ok", [(5, 9), (5, 2), (5, 9), (5, 9)], 2, OK),
    ("growing-past-allowed-lag-is-lagging", [(0, 5), (2, 20), (4, 40), (6, 60)], 3, LAGGING),
]


@pytest.mark.parametrize("name,entries,allowed,expected", ALLOWED, ids=[c[0] for c in ALLOWED])
def test_allowed_lag(name, entries, allowed, expected):
    assert run(entries, allowed_lag=allowed).status == expected


def test_transaction_marker_lag_is_caught_up():
    """Issue 18 item 6: a caught-up consumer of a transactional topic keeps lag 1 (the commit
    marker) on an idle group; the check says so (lag in seconds 0) and it must not be
    stalled, nor stopped once its members leave."""
    marker = [(41, 1)] * (W + 1)
    assert run(marker).status == STALLED  # what a lag of 1 alone would say
    assert run(marker, caught_up=(True,)).status == OK
    assert run([(41, 1, False)] * (W + 1), caught_up=(True,)).status == OK


# ---- no aliasing: a simulated producer, consumer and collector ---------------------------------

RATE = 100.0  # messages produced per collection interval


def simulate(commit_every, speed=1.0, stop_at=math.inf, collections=30, phase=0.37, size=DEFAULT_WINDOW,
             active=True):
    """Statuses at collection times phase, phase+1, ... (in collection intervals).

    The consumer reads `speed` times the production rate (all of it when >= 1) until
    stop_at, and commits what it has read every `commit_every` intervals."""
    t = StatusTracker(size)
    out = []
    for k in range(collections):
        now = phase + k
        last_commit = math.floor(min(now, stop_at) / commit_every) * commit_every
        read = min(RATE * last_commit, speed * RATE * last_commit)
        committed = int(read)
        lag = int(RATE * now) - committed
        out.append(t.observe("g", (committed,), (lag,), active).status)
    return out


@pytest.mark.parametrize("ratio", [0.5, 1.0, 2.0])
def test_healthy_consumer_is_ok_at_every_commit_interval(ratio):
    assert set(simulate(ratio)) == {OK}


@pytest.mark.parametrize("ratio", [0.2, 0.33, 0.8, 0.85, 0.9, 0.95, 1.05, 1.1, 1.5, 3.0])
@pytest.mark.parametrize("phase", [0.01, 0.37, 0.93])
def test_commit_interval_drifting_against_collections_is_no_false_alarm(ratio, phase):
    """Commits slightly faster than collections make the sampled lag creep up for several
    collections, then drop: within one commit's worth, so not lagging."""
    assert set(simulate(ratio, phase=phase, collections=60)) == {OK}


@pytest.mark.parametrize("ratio", [0.5, 1.0, 2.0])
def test_falling_behind_is_lagging_at_every_commit_interval(ratio):
    statuses = simulate(ratio, speed=0.3)
    assert statuses[-10:] == [LAGGING] * 10, statuses


@pytest.mark.parametrize("ratio", [0.5, 1.0, 2.0])
def test_stuck_consumer_is_stalled_at_every_commit_interval(ratio):
    statuses = simulate(ratio, stop_at=10.0)
    assert statuses[:10] == [OK] * 10
    assert statuses[-10:] == [STALLED] * 10, statuses


@pytest.mark.parametrize("ratio", [0.5, 1.0, 2.0])
def test_consumer_that_left_is_stopped_at_every_commit_interval(ratio):
    assert simulate(ratio, stop_at=10.0, active=False)[-10:] == [STOPPED] * 10


@pytest.mark.parametrize("commit_every_s", [1.0, 5.0, 30.0])
@pytest.mark.parametrize("stop_s", [100.0, 107.5, 114.9])
def test_default_window_reports_a_stop_within_75_seconds(commit_every_s, stop_s):
    """Issue 18's time to page: at the default 15 s interval the agent says stalled at most
    75 s after the consumer's last commit (the alert's `for:` and Alertmanager come on top)."""
    interval = 15.0
    statuses = simulate(commit_every_s / interval, stop_at=stop_s / interval, phase=0.0, collections=20)
    first_stalled = statuses.index(STALLED)
    assert first_stalled * interval - stop_s <= 75.0, statuses
    assert set(statuses[:first_stalled]) == {OK}


# ---- the tracker across collections --------------------------------------------------------------

def test_tracker_slides_the_window_and_recovers():
    """A stalled consumer that starts moving again leaves stalled once it moves."""
    t = StatusTracker(size=3)
    seen = [t.observe("g", (5,), (4,), True).status for _ in range(3)]
    assert seen == [OK, OK, STALLED]
    assert t.observe("g", (6,), (3,), True).status == OK  # moved and lag decreased
    later = [t.observe("g", (6 + i,), (3 + 10 * i,), True).status for i in range(1, 4)]
    assert later[-1] == LAGGING


def test_tracker_keeps_windows_per_key_and_forgets_vanished_ones():
    t = StatusTracker(size=2)
    t.observe(("g", "a"), (1,), (5,), False)
    assert t.observe(("g", "b"), (1,), (0,), False).status == OK
    t.retain([("g", "b")])
    # ("g","a") starts over: a single inactive observation with lag is stopped again, not rewound.
    assert t.observe(("g", "a"), (0,), (5,), False).status == STOPPED


def test_partition_dropped_and_added_keeps_the_others_history():
    t = StatusTracker(size=3)
    for _ in range(3):
        v = t.observe("g", (5, 9), (4, 0), True, partitions=(0, 1))
    assert v.partitions == [STALLED, OK]
    v = t.observe("g", (5, 1), (4, 6), True, partitions=(0, 2))  # 1 left, 2 arrived
    assert v.partitions == [STALLED, OK]  # 2 is new: not judged before a full window


def test_positions_that_are_not_message_counts_have_no_commit_tolerance():
    """Redis stream IDs: any rise of the lag at every commit point is lagging."""
    ids = [(1 << 30, 5), (2 << 30, 6), (3 << 30, 7), (4 << 30, 8)]
    assert run(ids, counts=False).status == LAGGING
    assert run(ids).status == OK


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        StatusTracker(W).observe("g", (1, 2), (3,), True)


# ---- the config keys, on every check that has a consumer status ---------------------------------

SECTIONS = {
    "kafka": "    bootstrap_servers: 127.0.0.1:9092\n",
    "pulsar": "    metrics_url: http://127.0.0.1:8080/metrics\n",
    "redis": "",
}


@pytest.mark.parametrize("kind", sorted(SECTIONS))
def test_status_keys_have_defaults_and_are_validated(kind):
    from mqwatch.agent.config import parse_config
    from mqwatch.agent.schema import ConfigErrors

    base = f"checks:\n  - kind: {kind}\n    name: c\n" + SECTIONS[kind]
    opts = parse_config(base, "mqwatch.yaml").checks[0].options
    assert (opts.status_window, opts.allowed_lag) == (DEFAULT_WINDOW, 0)
    assert parse_config(base + "    allowed_lag: 25\n", "mqwatch.yaml").checks[0].options.allowed_lag == 25
    with pytest.raises(ConfigErrors) as e:
        parse_config(base + "    allowed_lag: lots\n", "mqwatch.yaml")
    assert any("checks[0].allowed_lag:" in str(err) for err in e.value.errors), e.value.errors
