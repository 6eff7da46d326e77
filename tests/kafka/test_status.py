"""Each consumer status reached through a real sequence of commits over several collections.

The window is 3 observations so a test needs only a few collections.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer

from tests.helpers import kafka_commit, kafka_create_topics, kafka_produce, unique, wait_until
from tests.kafka.support import status_of

WINDOW = 3


def _setup(kafka_bootstrap, name, records=10):
    prefix = unique(name)
    topic, group = f"{prefix}-orders", f"{prefix}-billing"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: records})
    return prefix, topic, group


def test_group_without_members_and_lag_is_stopped_from_the_first_cycle(kafka_check, kafka_bootstrap):
    prefix, topic, group = _setup(kafka_bootstrap, "st-stopped")
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 4})
    run = kafka_check(prefix, status_window=WINDOW)
    statuses = [status_of(run.collect(), topic, group) for _ in range(WINDOW + 1)]
    assert statuses == ["stopped"] * (WINDOW + 1)


def test_assign_committer_that_falls_behind_is_lagging_never_stopped(kafka_check, kafka_bootstrap):
    prefix, topic, group = _setup(kafka_bootstrap, "st-lagging", records=5)
    run = kafka_check(prefix, status_window=WINDOW)
    committed, statuses = 1, []
    for _ in range(WINDOW + 2):
        kafka_commit(kafka_bootstrap, group, {(topic, 0): committed})
        statuses.append(status_of(run.collect(), topic, group))
        committed += 1
        kafka_produce(kafka_bootstrap, topic, {0: 3})  # produced faster than it consumes
    # Its first sight (no members, offsets not seen moving yet) is stopped; once they move it is not.
    assert "stopped" not in statuses[1:], statuses
    assert statuses[-1] == "lagging", statuses


def test_consumer_that_catches_up_is_ok(kafka_check, kafka_bootstrap):
    prefix, topic, group = _setup(kafka_bootstrap, "st-ok")
    run = kafka_check(prefix, status_window=WINDOW)
    statuses = []
    for committed in (2, 5, 8, 10, 10):
        kafka_commit(kafka_bootstrap, group, {(topic, 0): committed})
        statuses.append(status_of(run.collect(), topic, group))
    assert statuses[1:] == ["ok"] * 4, statuses


def test_committed_offset_moved_back_is_rewound(kafka_check, kafka_bootstrap):
    prefix, topic, group = _setup(kafka_bootstrap, "st-rewound")
    run = kafka_check(prefix, status_window=WINDOW)
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 8})
    run.collect()
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 9})
    run.collect()
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 2})  # e.g. kafka-consumer-groups --reset-offsets
    assert status_of(run.collect(), topic, group) == "rewound"


def test_live_member_that_stops_committing_is_stalled(kafka_check, kafka_bootstrap):
    prefix, topic, group = _setup(kafka_bootstrap, "st-stalled")
    consumer = Consumer({
        "bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": 6000, "max.poll.interval.ms": 10000,
    })
    try:
        consumer.subscribe([topic])
        msg = wait_until(lambda: consumer.poll(0.2), timeout=20, message="the member to get a record")
        consumer.commit(message=msg, asynchronous=False)  # commits offset 1, then never again
        run = kafka_check(prefix, status_window=WINDOW)
        statuses = []
        for _ in range(WINDOW + 1):
            consumer.poll(0)  # alive (polling, heartbeating) but not committing
            snap = run.collect()
            statuses.append(status_of(snap, topic, group))
            time.sleep(0.2)
        state = [lbl["state"] for lbl, v in snap.samples("mqwatch_consumer_state") if lbl["consumer"] == group and v == 1]
        assert state == ["Stable"]
        # Fresh agent: ok until the window is full (the group is active), then stalled.
        assert statuses[: WINDOW - 1] == ["ok"] * (WINDOW - 1), statuses
        assert statuses[-1] == "stalled", statuses
    finally:
        consumer.close()


def test_status_series_of_a_deleted_group_vanish(kafka_check, kafka_bootstrap):
    from tests.helpers import kafka_delete_group

    prefix, topic, group = _setup(kafka_bootstrap, "st-gone")
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 3})
    run = kafka_check(prefix, status_window=WINDOW)
    assert status_of(run.collect(), topic, group) == "stopped"
    kafka_delete_group(kafka_bootstrap, group)
    snap = run.collect()
    assert [lbl for lbl, _ in snap.samples("mqwatch_consumer_status") if lbl["consumer"] == group] == []


# ---- issue 13: per-partition status, constant lag, no aliasing (real commits on tansu) -----------

class _Workload:
    """A producer and an assign()-style committer kept open across the steps of a test."""

    def __init__(self, bootstrap: str, topic: str, group: str, partitions: int):
        from confluent_kafka import Consumer, Producer

        self.topic, self.partitions = topic, partitions
        self.producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1, "linger.ms": 0})
        self.committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        self.end = [0] * partitions

    def produce(self, n: int) -> None:
        for p in range(self.partitions):
            for _ in range(n):
                self.producer.produce(self.topic, value=b"order", partition=p)
            self.end[p] += n
        assert self.producer.flush(10) == 0

    def commit(self, offsets: dict[int, int]) -> None:
        from confluent_kafka import TopicPartition

        self.committer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                              asynchronous=False)

    def close(self) -> None:
        self.committer.close()


def partition_statuses(snap, topic: str, group: str) -> dict:
    return {lbl["partition"]: lbl["status"] for lbl, v in snap.samples("mqwatch_partition_status")
            if lbl["queue"] == topic and lbl["consumer"] == group and v == 1}


@pytest.mark.parametrize("commits_per_collection", [2, 1, 0.5], ids=["0.5x", "1x", "2x"])
def test_same_verdicts_whether_commits_come_at_half_once_or_twice_the_interval(
        kafka_check, kafka_bootstrap, commits_per_collection):
    """A consumer 3 behind on every partition, committing twice per collection, once, or every
    other one, is ok throughout (issue 13 item 1: constant lag with moving offsets); then
    partition 0 sticks on one offset while partition 1 goes on: stalled, and with
    granularity: partition the stuck partition is the stalled one (issue 13 item 2)."""
    prefix = unique("st-alias")
    topic, group = f"{prefix}-orders", f"{prefix}-billing"
    kafka_create_topics(kafka_bootstrap, {topic: 2})
    run = kafka_check(prefix, granularity="partition")  # the default window: 5 collections
    work = _Workload(kafka_bootstrap, topic, group, 2)
    work.produce(10)
    sub_steps = max(1, int(commits_per_collection))
    every = 1 if commits_per_collection >= 1 else int(1 / commits_per_collection)
    stuck_at = None
    try:
        healthy, stuck = [], []
        for step in range(14):
            for _ in range(sub_steps):
                work.produce(4 // sub_steps)
                if step % every == 0:
                    if step >= 7 and stuck_at is None:
                        stuck_at = work.end[0] - 3
                    work.commit({0: stuck_at if stuck_at is not None else work.end[0] - 3, 1: work.end[1] - 3})
            snap = run.collect()
            (healthy if step < 7 else stuck).append((status_of(snap, topic, group), partition_statuses(snap, topic, group)))
        # Its first sight (no members, no move seen yet) is stopped; from the second move on it is ok.
        assert [s for s, _ in healthy[every + 1:]] == ["ok"] * (7 - every - 1), healthy
        assert stuck[-1] == ("stalled", {"0": "stalled", "1": "ok"}), stuck
        # Stalled within a window (5 collections) of the last commit of partition 0.
        assert [s for s, _ in stuck].index("stalled") <= 5, stuck
    finally:
        work.close()


def test_transaction_marker_lag_is_not_stalled_or_stopped(kafka_check, kafka_bootstrap):
    """Issue 18 item 6: a transactional producer's commit marker leaves a caught-up group at
    lag 1. With the default time_lag (estimate) the agent sees the transaction happen, reads
    the committed offset once, finds only the marker: lag in seconds 0, status ok."""
    from confluent_kafka import Producer

    prefix = unique("st-txn")
    topic, group = f"{prefix}-orders", f"{prefix}-billing"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    run = kafka_check(prefix)
    kafka_produce(kafka_bootstrap, topic, {0: 2})
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 2})
    assert status_of(run.collect(), topic, group) == "ok"
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": prefix, "batch.num.messages": 1})
    producer.init_transactions(10)
    producer.begin_transaction()
    for _ in range(3):
        producer.produce(topic, value=b"order", partition=0)
    producer.commit_transaction(10)
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 5})  # after the 3 records; the marker is offset 5
    seen = []
    for _ in range(WINDOW + 4):  # the default window (5) and then some
        snap = run.collect()
        lag = [v for lbl, v in snap.samples("mqwatch_consumer_lag_messages") if lbl["consumer"] == group]
        seconds = [v for lbl, v in snap.samples("mqwatch_consumer_lag_seconds") if lbl["consumer"] == group]
        seen.append((status_of(snap, topic, group), lag, seconds))
    assert all(s == "ok" for s, _, _ in seen), seen
    assert seen[-1][1:] == ([1], [0.0]), seen
