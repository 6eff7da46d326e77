"""agent.status: the consumer status evaluator, table-driven.

Burrow's documented rules (github.com/linkedin/Burrow/wiki/Consumer-Lag-Evaluation-Rules and
core/internal/evaluator/caching.go) are cases here, named `burrow-*`. Where mqwatch
decides differently the case is named `differs-*` and says why:

- Burrow's window holds one entry per offset commit (it reads __consumer_offsets, which
  has commit times); mqwatch's holds one per collection, because OffsetFetch, which is
  all a monitor without access to __consumer_offsets gets, carries no commit times.
- Burrow flags STOPPED when the time since the last commit exceeds the window's span.
  mqwatch has no commit times, and splits "offsets not moving" by membership instead:
  stalled with live members (stuck), stopped without (nobody consuming).
- Burrow checks "lag was zero in the window => OK" before REWIND; mqwatch reports a
  rewind first, since a caught-up consumer reset to the beginning (reprocessing) is news.
- Burrow evaluates whatever part of the window it has; mqwatch says ok until the window
  is full, except that an inactive consumer with lag that has not moved is stopped at once
  (nothing will ever change for it, so waiting a window only delays the alert).
- Burrow evaluates partitions and reports the worst; mqwatch evaluates a group on a topic
  as a whole (offsets of all partitions): a topic is stalled only if no partition moves.
"""

from __future__ import annotations

import pytest

from agent.status import LAGGING, OK, REWOUND, STALLED, STOPPED, StatusTracker, evaluate, observation

W = 4  # window size used by the table


def window(entries):
    """[(offset or offsets, lag[, active])] -> observations, each compared with the one before."""
    out, previous = [], None
    for offset, lag, *active in entries:
        offsets = (offset,) if isinstance(offset, int) else tuple(offset)
        out.append(observation(previous, offsets, lag, active[0] if active else True))
        previous = offsets
    return out


CASES = [
    # (name, [(offset, lag, active)], expected)
    ("burrow-rule1-zero-lag-in-window-is-ok", [(1, 5), (2, 0), (2, 3), (2, 4)], OK),
    ("burrow-rule1-zero-lag-even-when-stuck-now", [(2, 0), (2, 1), (2, 1), (2, 1)], OK),
    ("burrow-rule2-offset-went-back-is-rewind", [(5, 5), (6, 5), (2, 9), (3, 8)], REWOUND),
    ("burrow-rule4-offsets-not-moving-with-lag-is-stalled", [(5, 3), (5, 4), (5, 6), (5, 9)], STALLED),
    ("burrow-rule4-stalled-with-fixed-lag", [(5, 3), (5, 3), (5, 3), (5, 3)], STALLED),
    ("burrow-rule5-moving-but-lag-growing-is-warning", [(1, 5), (2, 6), (3, 8), (4, 9)], LAGGING),
    ("burrow-rule5-moving-but-lag-steady-is-warning", [(1, 5), (2, 5), (3, 5), (4, 5)], LAGGING),
    ("burrow-rule5-lag-decreased-once-is-ok", [(1, 5), (2, 7), (6, 4), (7, 6)], OK),
    ("burrow-lag-decreasing-is-ok", [(1, 9), (3, 7), (5, 5), (7, 3)], OK),
    ("differs-no-members-not-moving-is-stopped", [(5, 3, False), (5, 4, False), (5, 6, False), (5, 9, False)], STOPPED),
    ("differs-rewind-wins-over-zero-lag", [(10, 0), (10, 0), (0, 10), (1, 9)], REWOUND),
    ("differs-per-topic-one-partition-moving-is-not-stalled",
     [((5, 1), 8), ((5, 2), 8), ((5, 3), 8), ((5, 4), 8)], LAGGING),
    ("assign-committer-without-members-advancing-is-lagging-not-stopped",
     [(1, 5, False), (2, 7, False), (3, 9, False), (4, 11, False)], LAGGING),
    ("assign-committer-without-members-catching-up-is-ok",
     [(1, 9, False), (4, 7, False), (6, 5, False), (9, 2, False)], OK),
    ("partition-added-is-not-a-rewind", [((5,), 3), ((5, 0), 3), ((6, 1), 2), ((7, 2), 1)], OK),
    # A fresh agent: the window is not full yet.
    ("fresh-active-with-lag-is-ok", [(5, 3), (5, 4)], OK),
    ("fresh-inactive-with-lag-is-stopped-at-once", [(5, 3, False)], STOPPED),
    ("fresh-inactive-that-moved-is-ok", [(5, 3, False), (6, 2, False)], OK),
    ("fresh-inactive-caught-up-is-ok", [(5, 0, False)], OK),
    ("fresh-rewind-is-reported-at-once", [(5, 3), (1, 7)], REWOUND),
    ("empty-window-is-ok", [], OK),
]


@pytest.mark.parametrize("name,entries,expected", CASES, ids=[c[0] for c in CASES])
def test_evaluate(name, entries, expected):
    assert evaluate(window(entries), W) == expected


def test_tracker_slides_the_window_and_recovers():
    """A stalled consumer that starts moving again leaves stalled once the window slides past."""
    t = StatusTracker(size=3)
    seen = [t.observe("g", (5,), 4, True) for _ in range(3)]
    assert seen == [OK, OK, STALLED]
    assert t.observe("g", (6,), 3, True) == OK  # moved and lag decreased
    assert [t.observe("g", (6 + i,), 3 + i, True) for i in range(1, 4)][-1] == LAGGING


def test_tracker_keeps_windows_per_key_and_forgets_vanished_ones():
    t = StatusTracker(size=2)
    t.observe(("g", "a"), (1,), 5, False)
    assert t.observe(("g", "b"), (1,), 0, False) == OK
    t.retain([("g", "b")])
    # ("g","a") starts over: a single inactive observation with lag is stopped again, not rewound.
    assert t.observe(("g", "a"), (0,), 5, False) == STOPPED
