"""The Kafka check: turns one cycle's ClusterView into the metric contract."""

from __future__ import annotations

from agent.check import Check
from agent.schema import matches
from agent.snapshot import SnapshotBuilder
from checks.kafka.client import GROUP_STATES, ClusterView, KafkaClient
from checks.kafka.config import SCHEMA
from checks.kafka.metrics import METRICS


class KafkaCheck(Check):
    kind = "kafka"
    config_schema = SCHEMA
    metrics = METRICS

    def __init__(self, name, options, timeout):
        super().__init__(name, options, timeout)
        self._client: KafkaClient | None = None

    def client(self) -> KafkaClient:
        if self._client is None:  # created lazily so a bad setting fails a collection, not the agent
            self._client = KafkaClient(list(self.options.bootstrap_servers), dict(self.options.client), self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def collect(self, out: SnapshotBuilder) -> None:
        view = self.client().fetch_view(
            group_filter=lambda g: matches(self.options.groups, g),
            topic_filter=lambda t: matches(self.options.topics, t),
        )
        for reason, message in view.errors:
            out.error(reason, message)
        self.emit_brokers(out, view)
        self.emit_topics(out, view)
        self.emit_groups(out, view)
        self.emit_lag(out, view)

    def emit_brokers(self, out: SnapshotBuilder, view: ClusterView) -> None:
        out.add("mqwatch_brokers", view.brokers)
        out.add("mqwatch_kafka_controller_id", view.controller_id)

    def emit_topics(self, out: SnapshotBuilder, view: ClusterView) -> None:
        for topic, parts in view.topics.items():
            out.add("mqwatch_kafka_topic_partitions", len(parts), queue=topic)
            out.add("mqwatch_kafka_under_replicated_partitions", sum(p.in_sync < p.replicas for p in parts.values()), queue=topic)
            out.add("mqwatch_kafka_offline_partitions", sum(p.leader < 0 for p in parts.values()), queue=topic)
            ends = [view.end_offsets.get((topic, p)) for p in parts]
            starts = [view.start_offsets.get((topic, p)) for p in parts]
            if parts and all(e is not None for e in ends):
                out.add("mqwatch_queue_produced_total", sum(ends), queue=topic)
                if all(s is not None for s in starts):
                    out.add("mqwatch_queue_messages", sum(max(0, e - s) for e, s in zip(ends, starts)), queue=topic)

    def emit_groups(self, out: SnapshotBuilder, view: ClusterView) -> None:
        for gid, g in view.groups.items():
            out.add("mqwatch_consumer_members", g.members, consumer=gid)
            for state in GROUP_STATES:
                out.add("mqwatch_consumer_state", 1 if g.state == state else 0, consumer=gid, state=state)

    def emit_lag(self, out: SnapshotBuilder, view: ClusterView) -> None:
        per_partition = self.options.granularity == "partition"
        for gid, lags in partition_lags(view).items():
            for topic, parts in lags.items():
                out.add("mqwatch_consumer_lag_messages", sum(parts.values()), queue=topic, consumer=gid)
                if per_partition:
                    for p, lag in parts.items():
                        out.add("mqwatch_partition_lag_messages", lag, queue=topic, consumer=gid, partition=p)


def partition_lags(view: ClusterView) -> dict:
    """group -> topic -> partition -> lag in messages, for committed partitions with a known end offset.

    A topic the group never committed on gets no entry, so it produces no series.
    """
    result: dict = {}
    for gid, g in view.groups.items():
        if not g.offsets:
            continue
        for (topic, p), committed in g.offsets.items():
            end = view.end_offsets.get((topic, p))
            if topic not in view.topics or end is None:
                continue
            result.setdefault(gid, {}).setdefault(topic, {})[p] = max(0, end - committed)
    return result
