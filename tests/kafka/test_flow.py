"""Flow signals on tansu: consumed counter, drain ETA, reprocessing after a rewind, lost messages.

The group commits with assign()-style commits (no membership), the way the status tests do.
"""

from __future__ import annotations

import math
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from mqwatch.agent.snapshot import SnapshotBuilder
from mqwatch.checks.kafka.client import ClusterView, GroupInfo, PartitionInfo
from mqwatch.checks.kafka.metrics import METRICS
from tests.helpers import kafka_commit, kafka_create_topics, kafka_produce, make_check, unique


def _labels(topic, group):
    return {"queue": topic, "consumer": group}


class Workload(threading.Thread):
    """Produces `produce_rate`/s and commits `commit_rate`/s on one partition, on an absolute schedule
    (a slow tick catches up rather than slowing the rates down)."""

    def __init__(self, bootstrap, topic, group, committed, produce_rate, commit_rate):
        super().__init__(daemon=True)
        self.topic, self.committed = topic, committed
        self.produce_rate, self.commit_rate = produce_rate, commit_rate
        self.producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1, "linger.ms": 0})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        self.stop = threading.Event()

    def run(self):
        start, produced, base = time.monotonic(), 0, self.committed
        try:
            while not self.stop.wait(0.05):
                elapsed = time.monotonic() - start
                while produced < int(elapsed * self.produce_rate):
                    self.producer.produce(self.topic, value=b"order", partition=0)
                    produced += 1
                self.producer.flush(5)
                target = base + int(elapsed * self.commit_rate)
                if target != self.committed:
                    self.committed = target
                    self.consumer.commit(offsets=[TopicPartition(self.topic, 0, target)], asynchronous=False)
        finally:
            self.consumer.close()
            self.producer.flush(5)


def _run(kafka_check, prefix, seconds, workload):
    """Collections about every 0.5 s while the workload runs: [(time, snapshot)]."""
    run = kafka_check(prefix, status_window=10, time_lag="off")
    snaps = [(time.time(), run.collect())]  # before the workload: the group's starting point
    workload.start()
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            snaps.append((time.time(), run.collect()))
            time.sleep(0.5)
    finally:
        workload.stop.set()
        workload.join(10)
    return snaps


def test_group_600_behind_committing_30_per_s_against_10_produced_drains_at_20_per_s(kafka_check, kafka_bootstrap):
    prefix = unique("flow-drain")
    topic, group = f"{prefix}-orders", f"{prefix}-billing"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: 700})
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 100})  # 600 behind
    snaps = _run(kafka_check, prefix, 9.0, Workload(kafka_bootstrap, topic, group, 100, 10, 30))
    labels = _labels(topic, group)
    (t0, first), (t1, last) = snaps[1], snaps[-1]
    consume_rate = (last.value("mqwatch_consumer_consumed_total", **labels)
                    - first.value("mqwatch_consumer_consumed_total", **labels)) / (t1 - t0)
    assert 20 <= consume_rate <= 32, consume_rate  # commits 30/s; collection times jitter a little
    lag = last.value("mqwatch_consumer_lag_messages", **labels)
    drain = last.value("mqwatch_consumer_drain_seconds", **labels)
    assert 0 < lag < 600 and math.isfinite(drain)
    # lag / 20 s at a net 20 messages/s; the EMA of a steady rate is that rate
    print(f"consume rate {consume_rate:.1f}/s, lag {lag:.0f}, drain {drain:.1f} s, net rate {lag / drain:.1f}/s")
    assert lag / 28 <= drain <= lag / 13, (lag, drain, lag / drain)
    # the counter never went down and started at the committed offset
    totals = [s.value("mqwatch_consumer_consumed_total", **labels) for _, s in snaps]
    assert totals[0] == 100 and totals == sorted(totals)


def test_group_falling_behind_never_drains(kafka_check, kafka_bootstrap):
    prefix = unique("flow-behind")
    topic, group = f"{prefix}-orders", f"{prefix}-billing"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: 50})
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 10})
    snaps = _run(kafka_check, prefix, 4.0, Workload(kafka_bootstrap, topic, group, 10, 20, 5))
    last = snaps[-1][1]
    assert last.value("mqwatch_consumer_drain_seconds", **_labels(topic, group)) == math.inf
    assert last.value("mqwatch_consumer_lag_messages", **_labels(topic, group)) > 40


def test_caught_up_group_drains_in_zero_and_first_cycle_has_no_estimate(kafka_check, kafka_bootstrap):
    prefix = unique("flow-zero")
    topic, behind, done = f"{prefix}-orders", f"{prefix}-behind", f"{prefix}-done"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: 5})
    kafka_commit(kafka_bootstrap, behind, {(topic, 0): 1})
    kafka_commit(kafka_bootstrap, done, {(topic, 0): 5})
    snap = kafka_check(prefix).collect()
    assert snap.value("mqwatch_consumer_drain_seconds", **_labels(topic, done)) == 0
    assert snap.value("mqwatch_consumer_drain_seconds", **_labels(topic, behind)) is None  # no rate yet


def test_rewind_by_n_counts_n_reprocessed_and_consumed_counts_only_advances(kafka_check, kafka_bootstrap):
    prefix = unique("flow-rewind")
    topic, group = f"{prefix}-orders", f"{prefix}-billing"
    kafka_create_topics(kafka_bootstrap, {topic: 2})
    kafka_produce(kafka_bootstrap, topic, {0: 100, 1: 100})
    run = kafka_check(prefix)
    labels = _labels(topic, group)

    def step(offsets):
        kafka_commit(kafka_bootstrap, group, {(topic, p): o for p, o in offsets.items()})
        snap = run.collect()
        return (snap.value("mqwatch_consumer_consumed_total", **labels),
                snap.value("mqwatch_consumer_reprocessed_messages_total", **labels))

    assert step({0: 50, 1: 40}) == (90, 0)
    # partition 0 rewound by 30 (kafka-consumer-groups --reset-offsets) while 1 advanced by 5:
    # the advance is consumed, the rewind is not subtracted from it but counted as reprocessed
    assert step({0: 20, 1: 45}) == (95, 30)
    assert step({0: 60, 1: 45}) == (135, 30)  # consuming the rewound messages again counts again


# ---- lost messages: tansu cannot delete records (no retention, no DeleteRecords), so the log
# start offset never moves there; the arithmetic is driven with ClusterViews as the client builds them.

def _view(start: int, committed: int | None, end: int = 100, t: float = 0.0) -> ClusterView:
    # committed None: the group's offsets could not be read this cycle (the client sets None)
    groups = {"billing": GroupInfo("Empty", 0, None if committed is None else {("orders", 0): committed})}
    return ClusterView(1, 1, {"orders": {0: PartitionInfo(1, 1, 1)}}, groups, {("orders", 0): end},
                       {("orders", 0): start}, t)


def _lost_after(views) -> list:
    """Each view through the check's own per-cycle path, as fetch_view hands it over."""
    from mqwatch.checks.kafka.check import _Cycle

    _, check = make_check({"kind": "kafka", "name": "shop", "bootstrap_servers": "127.0.0.1:1", "time_lag": "off"})
    seen = []
    for view in views:
        out = SnapshotBuilder("kafka", "shop", METRICS)
        cycle = _Cycle(check, out, deadline=float("inf"))
        cycle.offsets_known(view)
        for gid in view.groups:
            cycle.group_known(gid)
        cycle.finish()
        seen.append(out.build(0, 0).value("mqwatch_consumer_lost_messages_total", queue="orders", consumer="billing"))
    return seen


def test_lost_messages_table():
    cases = [
        # (log start, committed) per cycle -> lost total per cycle
        ([(0, 10), (0, 20)], [0, 0]),  # nothing below the log start
        ([(0, 10), (25, 10)], [0, 15]),  # retention deleted 15 the group had not read
        ([(30, 10), (50, 10), (50, 50), (50, 60)], [20, 40, 40, 40]),  # grows, then the group jumps forward: kept
        ([(30, 10), (30, 30), (45, 35)], [20, 20, 30]),  # a later gap after a jump counts from where it starts
        ([(30, 10), (30, None), (40, 10)], [20, None, 30]),  # a cycle without offsets keeps the state
    ]
    for cycles, want in cases:
        views = [_view(s, c, t=i) for i, (s, c) in enumerate(cycles)]
        assert _lost_after(views) == want, (cycles, want)


# ---- retention headroom: tansu answers DescribeConfigs with no entries, so on it the series is
# absent (tested below); the arithmetic is tested with the ConfigEntry objects librdkafka returns.

def test_retention_from_config_entries():
    from confluent_kafka.admin import ConfigEntry

    from mqwatch.checks.kafka.retention import headroom, retention_seconds

    def entries(**kv):
        return {k.replace("_", "."): ConfigEntry(k.replace("_", "."), v) for k, v in kv.items()}

    assert retention_seconds(entries(retention_ms="604800000", cleanup_policy="delete")) == 604800
    assert retention_seconds(entries(retention_ms="3600000", cleanup_policy="compact,delete")) == 3600
    assert retention_seconds(entries(retention_ms="3600000", cleanup_policy="compact")) is None  # never deleted by age
    assert retention_seconds(entries(retention_ms="-1")) is None  # infinite
    assert retention_seconds({}) is None  # tansu
    assert headroom(3600, 600) == 3000
    assert headroom(3600, 4000) == 0  # already deleting unread records
    assert headroom(None, 600) is None and headroom(3600, None) is None


def test_tansu_reports_no_retention_so_no_headroom_series(kafka_check, kafka_bootstrap):
    prefix = unique("flow-retention")
    topic, group = f"{prefix}-orders", f"{prefix}-billing"
    kafka_create_topics(kafka_bootstrap, {topic: 1})
    kafka_produce(kafka_bootstrap, topic, {0: 3})
    kafka_commit(kafka_bootstrap, group, {(topic, 0): 1})
    snap = kafka_check(prefix).collect()
    assert snap.value("mqwatch_consumer_lag_seconds", **_labels(topic, group)) is not None
    assert snap.samples("mqwatch_consumer_retention_headroom_seconds") == []
    assert not [m for r, m in snap.errors if r == "retention"]


def test_headroom_is_retention_minus_lag_seconds_when_the_broker_tells_retention():
    """The check's own path with an admin client answering as a real Kafka broker does
    (librdkafka ConfigEntry objects), since tansu answers with none."""
    from concurrent.futures import Future

    from confluent_kafka.admin import ConfigEntry

    class Admin:
        calls = 0

        def describe_configs(self, resources, request_timeout):
            Admin.calls += 1
            out = {}
            for r in resources:
                f = Future()
                f.set_result({"retention.ms": ConfigEntry("retention.ms", "7200000"),
                              "cleanup.policy": ConfigEntry("cleanup.policy", "delete")})
                out[r] = f
            return out

    _, check = make_check({"kind": "kafka", "name": "shop", "bootstrap_servers": "127.0.0.1:1"})
    check._client = type("C", (), {"admin": Admin(), "close": lambda self: None})()
    for _ in range(2):
        out = SnapshotBuilder("kafka", "shop", METRICS)
        check.emit_headroom(out, {("billing", "orders"): 1800.0}, time.monotonic() + 5)
        snap = out.build(0, 0)
        assert snap.value("mqwatch_consumer_retention_headroom_seconds", queue="orders", consumer="billing") == 5400
    assert Admin.calls == 1  # read once per retention_refresh, not every collection
