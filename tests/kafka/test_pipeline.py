"""How one Kafka collection overlaps and releases its work (issue 15): the reader's child is
started before the offsets are asked, each group's reply is dropped once read, and a
partition whose offsets fail is reported while the others are kept."""

from __future__ import annotations

import threading
import time
import weakref

from mqwatch.checks.kafka import client as kafka_client
from mqwatch.checks.kafka.client import KafkaClient, base_config
from tests.helpers import collect_once, kafka_commit, kafka_create_topics, kafka_produce, unique


def _lagging_topic(bootstrap: str, prefix: str, groups: int = 1) -> str:
    topic = f"{prefix}-orders"
    kafka_create_topics(bootstrap, {topic: 2})
    kafka_produce(bootstrap, topic, {0: 3, 1: 2})
    for i in range(groups):
        kafka_commit(bootstrap, f"{prefix}-g{i}", {(topic, 0): 1, (topic, 1): 0})
    return topic


def test_first_collection_starts_the_record_readers_child_before_asking_offsets(kafka_check, kafka_bootstrap):
    """A fresh agent has no end-offset history, so its first collection reads records to give
    lag in seconds: the child that reads them must already be starting while the offsets are
    fetched, not only once they are in. With time_lag off nothing is read, so no child."""
    seen = {}
    for mode in ("estimate", "off"):
        prefix = unique(f"pipe-{mode}")
        topic = _lagging_topic(kafka_bootstrap, prefix)
        run = kafka_check(prefix, time_lag=mode)
        fetch_view = run.check.client().fetch_view

        def spy(*args, _mode=mode, _run=run, _fetch=fetch_view, **kwargs):
            reader = _run.check._reader
            seen[_mode] = reader is not None and reader._proc is not None and reader._proc.poll() is None
            return _fetch(*args, **kwargs)

        run.check.client().fetch_view = spy
        snap = run.collect()
        assert snap.value("mqwatch_consumer_lag_messages", queue=topic, consumer=f"{prefix}-g0") == 4
        if mode == "estimate":  # the read the child was started for answered
            assert snap.value("mqwatch_consumer_lag_seconds", queue=topic, consumer=f"{prefix}-g0") is not None
            assert not [m for r, m in snap.errors if r == "time_lag"]
        else:  # no record to read: the child was never started
            assert run.check._reader is None or run.check._reader._proc is None
    assert seen == {"estimate": True, "off": False}


def test_each_groups_offsets_reply_is_released_once_read(kafka_check, kafka_bootstrap, monkeypatch):
    """A group's OffsetFetch reply holds an object per committed offset (100k at 10k partitions
    x 50 groups); each must be dropped when read, not kept until the collection ends (it was:
    peak memory held every group's reply at once)."""
    prefix = unique("pipe-release")
    topic = _lagging_topic(kafka_bootstrap, prefix, groups=4)
    read: list = []
    held_after_reading_all: list = []
    absorb, absorb_all = kafka_client._GroupReplies._absorb_offsets, kafka_client._GroupReplies.absorb_all

    def absorbing(self, gid, futures):
        read.extend(weakref.ref(f) for f in futures)
        return absorb(self, gid, futures)

    def absorbing_all(self, remaining):
        absorb_all(self, remaining)
        # Still inside the collection, every reply read: none may be alive any more. (librdkafka's
        # thread may let go of the last one a moment after setting it: poll, with a deadline.)
        deadline = time.monotonic() + 5
        while any(r() is not None for r in read) and time.monotonic() < deadline:
            time.sleep(0.01)
        held_after_reading_all.append(sum(r() is not None for r in read))

    monkeypatch.setattr(kafka_client._GroupReplies, "_absorb_offsets", absorbing)
    monkeypatch.setattr(kafka_client._GroupReplies, "absorb_all", absorbing_all)
    snap = kafka_check(prefix, time_lag="off").collect()
    assert [snap.value("mqwatch_consumer_lag_messages", queue=topic, consumer=f"{prefix}-g{i}") for i in range(4)] == [4] * 4
    assert len(read) == 4 and held_after_reading_all == [0]


def test_a_partition_whose_offsets_cannot_be_read_is_reported_and_the_others_kept(kafka_bootstrap):
    """ListOffsets answers per partition; one failing (here a partition that does not exist)
    is named in a partition_offsets error and the rest of the batch is still used."""
    topic = _lagging_topic(kafka_bootstrap, unique("pipe-offsets"))
    kafka = KafkaClient(base_config([kafka_bootstrap], {}, 10.0), 10.0)
    try:
        keys = {k: k for k in [(topic, 0), (topic, 1), (topic, 7)]}
        errors: list = []
        end, start, _ = kafka._read_offsets(keys, lambda: 10.0, errors)
    finally:
        kafka.close()
    assert end == {(topic, 0): 3, (topic, 1): 2} and start == {(topic, 0): 0, (topic, 1): 0}
    assert sorted(errors) == [
        ("partition_offsets", f"topic {topic}: end offsets of 1 partition(s) unavailable: Local: Unknown partition"),
        ("partition_offsets", f"topic {topic}: start offsets of 1 partition(s) unavailable: Local: Unknown partition"),
    ]


def test_each_groups_series_are_built_while_the_broker_still_answers_the_others(kafka_check, kafka_bootstrap, monkeypatch):
    """At 10k partitions x 50 groups the broker answers the groups' offsets one after another
    for most of a second; building every series only after the last reply added 0.1-0.15 s
    to each collection. Here one group's reply comes 3 s late: the other groups' lag in
    seconds and status must be built before it arrives, not after (on a fresh agent their
    lag in seconds needs a record read first, started by the child's start-up: up to ~1 s)."""
    from concurrent.futures import Future

    from confluent_kafka.admin import AdminClient

    from mqwatch.checks.kafka.check import KafkaCheck

    prefix = unique("pipe-early")
    topic = _lagging_topic(kafka_bootstrap, prefix, groups=4)
    late_group, delay = f"{prefix}-g3", 3.0
    arrived: dict = {}
    judged: dict = {}
    ask = AdminClient.list_consumer_group_offsets

    def late_reply(self, requests, **kwargs):
        futures = ask(self, requests, **kwargs)
        if late_group not in futures:
            return futures
        late: Future = Future()
        late.set_running_or_notify_cancel()
        original = futures[late_group]

        def deliver():  # in a thread of the test's own: nothing runs in librdkafka's callbacks
            try:
                reply = original.result(timeout=30)
            except Exception as e:
                reply = e
            time.sleep(delay)
            arrived[late_group] = time.monotonic()
            late.set_exception(reply) if isinstance(reply, Exception) else late.set_result(reply)
        threading.Thread(target=deliver, daemon=True).start()
        return {late_group: late}

    emit_status = KafkaCheck.emit_status

    def judging(self, out, gid, *args):
        judged[gid] = time.monotonic()
        return emit_status(self, out, gid, *args)

    monkeypatch.setattr(AdminClient, "list_consumer_group_offsets", late_reply)
    monkeypatch.setattr(KafkaCheck, "emit_status", judging)
    snap = kafka_check(prefix).collect()
    assert [snap.value("mqwatch_consumer_lag_messages", queue=topic, consumer=f"{prefix}-g{i}") for i in range(4)] == [4] * 4
    seconds = [snap.value("mqwatch_consumer_lag_seconds", queue=topic, consumer=f"{prefix}-g{i}") for i in range(4)]
    assert None not in seconds, (seconds, snap.errors)
    early = {gid: arrived[late_group] - t for gid, t in judged.items() if gid != late_group}
    assert len(early) == 3 and all(lead > 1.0 for lead in early.values()), early
    assert judged[late_group] >= arrived[late_group]


def test_a_collection_that_fails_midway_leaves_no_reading_thread_behind(kafka_check, kafka_bootstrap, monkeypatch):
    """Record reads run ahead in a thread while the groups' offsets come in; a collection that
    fails after the end offsets are in (here: the group replies cannot be read) must end it,
    or every failed cycle of a flapping broker would leave one waiting for good."""
    prefix = unique("pipe-fail")
    _lagging_topic(kafka_bootstrap, prefix, groups=2)

    def broken(self, remaining):
        raise RuntimeError("reply unreadable")

    monkeypatch.setattr(kafka_client._GroupReplies, "absorb_all", broken)
    run = kafka_check(prefix)
    before = {t for t in threading.enumerate() if t.name == "kafka-time-lag"}
    snap = collect_once(run.check)
    assert not snap.ok and "reply unreadable" in snap.error
    deadline = time.monotonic() + 5
    while {t for t in threading.enumerate() if t.name == "kafka-time-lag"} - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not {t for t in threading.enumerate() if t.name == "kafka-time-lag"} - before
