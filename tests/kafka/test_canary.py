"""The end-to-end canary against a broker of the test's own (it is frozen and stopped)."""

from __future__ import annotations

import threading
import time

from tests.helpers import unique, wait_until
from tests.kafka.support import CheckRun

CANARY = {"enabled": True, "interval": "200ms", "timeout": "1s", "replication_factor": 1}


def _canary_threads():
    return [t for t in threading.enumerate() if t.name.startswith("canary-")]


def _roundtrips(snap):
    h = snap.value("mqwatch_canary_roundtrip_seconds")
    return h.count if h is not None else 0


def _failures(snap):
    return {lbl["stage"]: v for lbl, v in snap.samples("mqwatch_canary_failures_total")}


def test_canary_round_trips_then_fails_while_the_broker_is_frozen_and_recovers(fresh_tansu):
    run = CheckRun({"bootstrap_servers": fresh_tansu.address, "canary": CANARY})
    try:
        snap = wait_until(lambda: (s := run.collect()) and _roundtrips(s) >= 3 and s, timeout=20,
                          message="three canary round trips")
        h = snap.value("mqwatch_canary_roundtrip_seconds")
        assert 0 < h.sum / h.count < 1.0
        assert _failures(snap) == {"produce": 0, "consume": 0, "timeout": 0}
        assert snap.value("mqwatch_kafka_topic_partitions", queue="mqwatch-canary") == 1  # created by the canary

        fresh_tansu.pause()  # the port accepts connections, nothing answers
        time.sleep(2.5)
        fresh_tansu.resume()
        snap = wait_until(lambda: (s := run.collect()) and sum(_failures(s).values()) >= 1 and s, timeout=20,
                          message="a canary failure counted")
        before = _roundtrips(snap)
        snap = wait_until(lambda: (s := run.collect()) and _roundtrips(s) > before and s, timeout=20,
                          message="round trips again after the broker resumed")
        assert sum(_failures(snap).values()) >= 1  # a counter: failures stay counted
    finally:
        run.close()
    assert _canary_threads() == []


def test_canary_fails_when_the_broker_stops_and_close_still_returns_promptly(fresh_tansu):
    run = CheckRun({"bootstrap_servers": fresh_tansu.address, "canary": CANARY})
    try:
        wait_until(lambda: _roundtrips(run.collect()) >= 1, timeout=20, message="a canary round trip")
        fresh_tansu.stop()
        canary = run.check._canary
        wait_until(lambda: sum(canary.stats.failure_counts().values()) >= 1, timeout=10,
                   message="the canary to count a failure")
        assert canary.stats.failure_counts()["produce"] >= 1
        t0 = time.monotonic()
    finally:
        run.close()
    assert time.monotonic() - t0 < 8
    assert _canary_threads() == []


def test_missing_canary_topic_without_create_counts_produce_failures(kafka_bootstrap):
    missing = unique("canary-missing")
    run = CheckRun({"bootstrap_servers": kafka_bootstrap, "topics": {"include": ["^canary-missing"]},
                    "canary": {**CANARY, "topic": missing, "create_topic": False}})
    try:
        snap = wait_until(lambda: (s := run.collect()) and _failures(s)["produce"] >= 1 and s, timeout=20,
                          message="a produce failure")
        assert _roundtrips(snap) == 0
        assert snap.value("mqwatch_kafka_topic_partitions", queue=missing) is None  # not auto-created either
    finally:
        run.close()


def test_canary_is_off_by_default(kafka_check):
    snap = kafka_check("canary-off").collect()
    assert snap.samples("mqwatch_canary_roundtrip_seconds") == []
    assert snap.samples("mqwatch_canary_failures_total") == []
    assert _canary_threads() == []


def _sequence(snap):
    return tuple(snap.value(f"mqwatch_canary_{k}_messages_total") for k in ("lost", "duplicated", "reordered"))


def test_replayed_canary_message_counts_as_duplicated(kafka_bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = unique("canary-dup")
    run = CheckRun({"bootstrap_servers": kafka_bootstrap, "topics": {"include": ["^canary-dup"]},
                    "canary": {**CANARY, "topic": topic}})
    try:
        wait_until(lambda: _roundtrips(run.collect()) >= 2, timeout=20, message="two canary round trips")
        assert _sequence(run.collect()) == (0, 0, 0)
        # replay: a tool copies the first canary message back into the topic
        reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique("replayer")})
        reader.assign([TopicPartition(topic, 0, 0)])
        first = wait_until(lambda: (m := reader.poll(0.5)) is not None and m.error() is None and m, timeout=10,
                           message="the first canary message")
        reader.close()
        p = Producer({"bootstrap.servers": kafka_bootstrap, "batch.num.messages": 1})
        p.produce(topic, key=first.key(), value=first.value(), partition=0)
        assert p.flush(10) == 0
        snap = wait_until(lambda: (s := run.collect()) and _sequence(s)[1] >= 1 and s, timeout=20,
                          message="the duplicate counted")
        assert _sequence(snap) == (0, 1, 0)
    finally:
        run.close()


def test_canary_message_truncated_before_it_was_consumed_counts_as_lost(kafka_bootstrap):
    """Driven step by step (the canary's own send and round trip, on the real broker) so the
    truncation falls between the acknowledgement and the consumption. tansu cannot delete
    records, and deleting a topic under a live librdkafka 2.16 consumer crashes librdkafka,
    so the truncation is what the consumer sees of it: its position moved past the message,
    as after DeleteRecords and an out-of-range reset."""
    from confluent_kafka import TopicPartition

    from mqwatch.checks.kafka.canary import Canary
    from tests.helpers import config_for

    topic = unique("canary-lost")
    opts = config_for({"kind": "kafka", "name": "shop", "bootstrap_servers": kafka_bootstrap,
                       "canary": {**CANARY, "topic": topic, "lost_after": "1s"}}).checks[0].options.canary
    canary = Canary(opts, {"bootstrap.servers": kafka_bootstrap})
    producer, consumer = canary._clients(canary._prepare())
    try:
        canary._round(producer, consumer)
        position = consumer.position([TopicPartition(topic, 0)])[0].offset
        _, delivered = canary._send(producer)
        wait_until(lambda: producer.poll(0.1) is not None and "err" in delivered, timeout=10, message="the ack")
        assert delivered["err"] is None
        consumer.seek(TopicPartition(topic, 0, position + 1))  # the message is gone for the consumer
        canary._round(producer, consumer)  # the next one comes back
        assert canary.sequence_counts() == (0, 0, 0)  # not lost yet: within lost_after
        wait_until(lambda: canary.sequence_counts()[0] >= 1, timeout=10, message="the loss counted")
        assert canary.sequence_counts() == (1, 0, 0)
    finally:
        consumer.close()
        producer.flush(1)
