"""Lag in seconds, by both methods, against tansu."""

from __future__ import annotations

import time

from tests.helpers import kafka_commit, kafka_create_topics, kafka_produce, unique

HOUR = 3600.0


def _lag_seconds(snap, topic, group):
    return snap.value("mqwatch_consumer_lag_seconds", queue=topic, consumer=group)


def test_exact_lag_is_the_age_of_the_oldest_unconsumed_record_on_the_first_cycle(kafka_check, kafka_bootstrap):
    prefix = unique("tl-exact")
    topic, group = f"{prefix}-orders", f"{prefix}-billing"
    kafka_create_topics(kafka_bootstrap, {topic: 2})
    now_ms = int(time.time() * 1000)
    kafka_produce(kafka_bootstrap, topic, {0: 3}, timestamp_ms=now_ms - 120_000)  # offsets 0..2, 2 minutes old
    kafka_produce(kafka_bootstrap, topic, {0: 2, 1: 4}, timestamp_ms=now_ms - 10_000)
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 1, (topic, 1): 4})  # partition 1 caught up

    for mode in ("exact", "estimate"):  # estimate has no history yet, so it reads exactly too
        snap = kafka_check(prefix, time_lag=mode, granularity="partition").collect()
        assert 119 <= _lag_seconds(snap, topic, group) <= 130, mode
        assert snap.value("mqwatch_partition_lag_seconds", queue=topic, consumer=group, partition=1) == 0
        assert 119 <= snap.value("mqwatch_partition_lag_seconds", queue=topic, consumer=group, partition=0) <= 130


def test_caught_up_group_has_zero_seconds_and_off_exports_none(kafka_check, kafka_bootstrap):
    prefix = unique("tl-zero")
    topic, group = f"{prefix}-orders", f"{prefix}-fast"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: 3}, timestamp_ms=int(time.time() * 1000) - 600_000)
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 3})
    assert _lag_seconds(kafka_check(prefix).collect(), topic, group) == 0
    snap = kafka_check(prefix, time_lag="off").collect()
    assert snap.samples("mqwatch_consumer_lag_seconds") == []
    assert snap.value("mqwatch_consumer_lag_messages", queue=topic, consumer=group) == 0


def test_estimate_dates_records_by_when_the_broker_got_them_not_by_their_timestamp(kafka_check, kafka_bootstrap):
    """Records carry an hour-old producer timestamp; the estimate must go by the end-offset history."""
    prefix = unique("tl-est")
    topic, group = f"{prefix}-orders", f"{prefix}-billing"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: 2})
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 2})
    run = kafka_check(prefix, time_lag="estimate")
    exact = kafka_check(prefix, time_lag="exact")
    run.collect()
    before = time.time()
    kafka_produce(kafka_bootstrap, topic, {0: 3}, timestamp_ms=int((time.time() - HOUR) * 1000))
    run.collect()  # the history now brackets when offsets 2..4 arrived
    after = time.time()
    time.sleep(2.0)
    snap = run.collect()
    now = time.time()
    estimated = _lag_seconds(snap, topic, group)
    # The record at offset 2 arrived between `before` and `after`: the estimate's error bound.
    assert now - after - 0.5 <= estimated <= now - before + 0.5
    assert estimated < 60
    assert _lag_seconds(exact.collect(), topic, group) >= HOUR - 5  # exact trusts the record timestamp


def test_offsets_past_the_end_and_future_timestamps_give_zero_not_negative_seconds(kafka_check, kafka_bootstrap):
    """A committed offset beyond the end (topic recreated smaller) and a producer clock in the future."""
    prefix = unique("tl-odd")
    topic, ahead, future = f"{prefix}-orders", f"{prefix}-ahead", f"{prefix}-future"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: 3}, timestamp_ms=int((time.time() + HOUR) * 1000))
    kafka_commit(kafka_bootstrap, ahead, {(topic, 0): 50})
    kafka_commit(kafka_bootstrap, future, {(topic, 0): 0})
    snap = kafka_check(prefix, time_lag="exact").collect()
    assert snap.value("mqwatch_consumer_lag_messages", queue=topic, consumer=ahead) == 0
    assert _lag_seconds(snap, topic, ahead) == 0
    assert snap.value("mqwatch_consumer_lag_messages", queue=topic, consumer=future) == 3
    assert _lag_seconds(snap, topic, future) == 0
    assert snap.errors == ()


def test_exact_reads_are_bounded_per_cycle_and_cached_until_the_group_commits(kafka_check, kafka_bootstrap):
    prefix = unique("tl-bound")
    topic, group = f"{prefix}-orders", f"{prefix}-batch"
    kafka_create_topics(kafka_bootstrap, {topic: 9})
    now_ms = int(time.time() * 1000)
    kafka_produce(kafka_bootstrap, topic, {p: 2 for p in range(9)}, timestamp_ms=now_ms - 60_000)
    kafka_commit(kafka_bootstrap, group, {(topic, p): 0 for p in range(9)})
    run = kafka_check(prefix, time_lag="exact", time_lag_fetches=4, granularity="partition")

    def dated(snap):
        return {lbl["partition"] for lbl, _ in snap.samples("mqwatch_partition_lag_seconds")}

    first = run.collect()
    assert len(dated(first)) == 4
    assert first.errors == ()  # the budget defers reads by design: not an error
    assert 59 <= first.value("mqwatch_consumer_lag_seconds", queue=topic, consumer=group) <= 70
    second, third = run.collect(), run.collect()
    assert len(dated(second)) == 8 and len(dated(third)) == 9  # cached dates stay, 4 new per cycle
    assert third.errors == ()
    fourth = run.collect()  # nothing new to read: every date comes from the cache
    assert len(dated(fourth)) == 9 and fourth.errors == ()
    assert run.check.time_lag.last_reads == 0


def test_groups_at_different_offsets_of_one_partition_are_all_dated_on_the_first_cycle(kafka_check, kafka_bootstrap):
    """A read assigns a partition at one offset. Three groups behind on the same partition at
    three offsets must all get their lag in seconds on a fresh agent's first cycle: one read
    used to date the biggest lag only and leave the others without a value until later cycles."""
    prefix = unique("tl-offsets")
    topic = f"{prefix}-orders"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    now_ms = int(time.time() * 1000)
    for age_s in (300, 200, 100):  # offsets 0, 1, 2: 5, 3 and 1 minutes old
        kafka_produce(kafka_bootstrap, topic, {0: 1}, timestamp_ms=now_ms - age_s * 1000)
    kafka_produce(kafka_bootstrap, topic, {0: 1}, timestamp_ms=now_ms)
    for offset, group in enumerate(("billing", "shipping", "audit")):
        kafka_commit(kafka_bootstrap, f"{prefix}-{group}", {(topic, 0): offset})
    for mode in ("exact", "estimate"):
        snap = kafka_check(prefix, time_lag=mode).collect()
        ages = [_lag_seconds(snap, topic, f"{prefix}-{g}") for g in ("billing", "shipping", "audit")]
        assert None not in ages, (mode, ages, snap.errors)
        assert 299 <= ages[0] <= 310 and 199 <= ages[1] <= 210 and 99 <= ages[2] <= 110, (mode, ages)
        assert snap.errors == ()
