"""A check's consecutive snapshots: each says exactly what its own collection saw, although
unchanged series are carried over from the previous cycle's objects (agent/snapshot.py)."""

import gc
import sys

from mqwatch.agent.check import Check
from mqwatch.agent.metrics import CONSUMER_LAG_MESSAGES, QUEUE_MESSAGES
from mqwatch.agent.scheduler import Collector


class ScriptedCheck(Check):
    """Emits, on each collection, the next of the given {(queue, consumer): lag} states."""

    kind = "scripted"
    metrics = (CONSUMER_LAG_MESSAGES, QUEUE_MESSAGES)

    def __init__(self, cycles: list[dict], fail_on: int = -1):
        super().__init__("orders", None, 5.0)
        self.cycles, self.fail_on, self.n = cycles, fail_on, 0

    def collect(self, out) -> None:
        lags, self.n = self.cycles[self.n], self.n + 1
        for (queue, consumer), lag in lags.items():
            out.add(CONSUMER_LAG_MESSAGES.name, lag, queue=queue, consumer=consumer)
        out.add(QUEUE_MESSAGES.name, sum(lags.values()), queue="all")
        if self.n - 1 == self.fail_on:
            raise RuntimeError("broker answered garbage")


def lags(snap) -> dict:
    return {(s["queue"], s["consumer"]): v for s, v in snap.samples(CONSUMER_LAG_MESSAGES.name)}


def test_each_snapshot_has_exactly_its_own_cycles_series_and_values():
    cycles = [
        {("orders", "billing"): 5, ("orders", "shipping"): 0.0, ("payments", "ledger"): 7},
        {("orders", "billing"): 5, ("orders", "shipping"): -0.0, ("refunds", "ledger"): 1},  # one gone, one new
        {("orders", "billing"): 6, ("orders", "shipping"): -0.0, ("refunds", "ledger"): 1},
    ]
    collector = Collector(ScriptedCheck(cycles), timeout=5.0)
    first, second, third = (collector.collect() for _ in cycles)
    assert [lags(s) for s in (first, second, third)] == cycles
    assert second.value(QUEUE_MESSAGES.name, queue="all") == 6 and third.value(QUEUE_MESSAGES.name, queue="all") == 7
    # -0.0 equals 0.0 but renders as "-0.0": a changed sign is a new value, not the old series
    shipping = [v for s, v in second.samples(CONSUMER_LAG_MESSAGES.name) if s["consumer"] == "shipping"]
    assert str(shipping[0]) == "-0.0"
    # the earlier snapshot is untouched by the later cycles (the exporter may still be serving it)
    assert lags(first) == cycles[0]


def test_an_unchanged_series_is_the_previous_cycles_object_and_a_changed_one_is_not():
    cycles = [{("orders", "billing"): 5, ("orders", "shipping"): 3}, {("orders", "billing"): 5, ("orders", "shipping"): 4}]
    collector = Collector(ScriptedCheck(cycles), timeout=5.0)
    first, second = collector.collect(), collector.collect()
    by_consumer = [{dict(series[0])["consumer"]: series for series in s.families[CONSUMER_LAG_MESSAGES.name]} for s in (first, second)]
    assert by_consumer[1]["billing"] is by_consumer[0]["billing"]
    assert by_consumer[1]["shipping"] is not by_consumer[0]["shipping"] and by_consumer[1]["shipping"][1] == 4


def test_a_failed_collection_is_not_the_base_of_the_next_one():
    cycles = [{("orders", "billing"): 5}, {("orders", "billing"): 9}, {("orders", "billing"): 5}]
    collector = Collector(ScriptedCheck(cycles, fail_on=1), timeout=5.0)
    ok, failed, after = collector.collect(), collector.collect(), collector.collect()
    assert ok.ok and not failed.ok and after.ok
    assert lags(after) == {("orders", "billing"): 5}
    assert after.families[CONSUMER_LAG_MESSAGES.name][0] is ok.families[CONSUMER_LAG_MESSAGES.name][0]


def test_a_consumer_that_left_is_no_longer_held_once_its_series_are_gone():
    """A churn of short-lived groups (the memory benchmark's 500) must not leave their labels
    behind: the agent kept one label pair per value it ever exported, for its whole life."""
    left = "".join(["churned-", "group-0001"])  # an object of its own, not an interned literal
    cycles = [{("orders", "billing"): 5, ("orders", left): 3}, {("orders", "billing"): 5}, {("orders", "billing"): 6}]
    held_by_test = sys.getrefcount(left)
    collector = Collector(ScriptedCheck(cycles), timeout=5.0)
    snaps = [collector.collect()]
    assert any(("consumer", left) in labels for labels, _ in snaps[0].families[CONSUMER_LAG_MESSAGES.name])
    assert sys.getrefcount(left) > held_by_test
    snaps += [collector.collect(), collector.collect()]
    del snaps  # the exporter keeps only the latest snapshot
    gc.collect()
    assert sys.getrefcount(left) == held_by_test
