"""Each consumer status reached through a real sequence of commits over several collections.

The window is 3 observations so a test needs only a few collections.
"""

from __future__ import annotations

import time

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
