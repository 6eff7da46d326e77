"""mqwatch.agent.counters: exported counters from upstream counters that reset, vanish and come back."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mqwatch.agent.counters import REBASE, Counters

ONE_UPSTREAM = [
    # (name, observed values of one upstream counter, expected totals after each)
    ("first-sight-counts-everything-so-far", [7], [7]),
    ("growth-is-added", [7, 9, 12], [7, 9, 12]),
    ("no-change-adds-nothing", [7, 7, 7], [7, 7, 7]),
    ("reset-to-a-smaller-value-counts-the-new-value", [7, 9, 2, 5], [7, 9, 11, 14]),
    ("reset-to-zero", [7, 0, 3], [7, 7, 10]),
    ("invalid-values-are-not-observations", [7, float("nan"), -1, 9], [7, 7, 7, 9]),
]


@pytest.mark.parametrize("name,values,totals", ONE_UPSTREAM, ids=[c[0] for c in ONE_UPSTREAM])
def test_one_upstream_counts_like_prometheus_increase(name, values, totals):
    c = Counters()
    assert [c.observe("dlq", v) for v in values] == totals


REBASED = [
    ("first-sight-counts-the-current-size", [4], [4]),
    ("growth-is-counted", [4, 6], [4, 6]),
    ("a-fall-adds-nothing-and-growth-counts-from-there", [4, 6, 1, 3], [4, 6, 6, 8]),
]


@pytest.mark.parametrize("name,values,totals", REBASED, ids=[c[0] for c in REBASED])
def test_rebase_counts_growth_only(name, values, totals):
    c = Counters()
    assert [c.observe("q", v, on_drop=REBASE) for v in values] == totals


def cycle(c: Counters, key, upstreams: dict):
    for upstream, value in upstreams.items():
        c.observe(key, value, upstream=upstream)
    return c.total(key)


def test_issue_12_sum_drops_when_one_broker_is_missing():
    """3000 -> 3000 -> 2000 (one broker's scrape failed) was exported as 3000 -> 3000 -> 5000."""
    c = Counters()
    assert cycle(c, "dlq", {"a": 1000, "b": 2000}) == 3000
    assert cycle(c, "dlq", {"a": 1000, "b": 2000}) == 3000
    assert cycle(c, "dlq", {"b": 2000}) == 3000  # a missing upstream adds nothing
    assert cycle(c, "dlq", {"a": 1000, "b": 2000}) == 3000  # and its return invents nothing
    assert cycle(c, "dlq", {"a": 1001, "b": 2000}) == 3001


def test_issue_12_two_brokers_one_hangs_one_restarts_counts_eight_not_nineteen():
    """One DLQ served by two brokers (3 and 4 dead letters); A hangs, B restarts, 1 more arrives."""
    c = Counters()
    assert cycle(c, "dlq", {"a": 3, "b": 4}) == 7
    assert cycle(c, "dlq", {"b": 4}) == 7  # A hangs
    assert cycle(c, "dlq", {}) == 7  # both unreadable
    assert cycle(c, "dlq", {"a": 3, "b": 0}) == 7  # B restarted: its counter starts over
    assert cycle(c, "dlq", {"a": 3, "b": 1}) == 8  # the one real new dead letter


def test_keys_are_separate_and_forgotten_only_when_retained_away():
    c = Counters()
    c.observe("a", 5)
    c.observe("b", 2)
    c.add("b", 3)
    c.add("b", -4)  # never decreases
    c.retain(["b"])
    assert c.total("a") is None and c.total("b") == 5
    assert c.keys() == ["b"]
    assert c.observe("a", 6) == 6  # a recreated series starts over


@given(st.lists(st.tuples(st.sampled_from("xyz"), st.integers(min_value=0, max_value=10**9)), max_size=40),
       st.booleans())
def test_totals_never_decrease(observations, rebase):
    c = Counters()
    totals = [c.observe("k", v, upstream=u, on_drop=REBASE if rebase else "reset") for u, v in observations]
    assert totals == sorted(totals)
    if observations:
        # Without resets, the total is the sum of each upstream's last value (first sight counts).
        last = {}
        for u, v in observations:
            last[u] = v
        assert totals[-1] >= sum(last.values())
