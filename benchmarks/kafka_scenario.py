"""Builds the Kafka-at-scale scenario on a tansu broker: topics, one record per partition, committed offsets.

Set-up is parallelised over worker processes (confluent-kafka releases the GIL, but one
producer or committer per process keeps tansu's request queues full) so that even the
30,000-partition variant is ready within a couple of minutes.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

PARTITIONS_PER_TOPIC = 100
TOPICS_PER_GROUP_SHARE = 0.2  # each group commits on a fifth of the topics (20 of 100 at 10k)


@dataclass(frozen=True)
class KafkaScenario:
    partitions: int  # total, a multiple of PARTITIONS_PER_TOPIC (or fewer for smoke runs)
    groups: int = 50
    partitions_per_topic: int = PARTITIONS_PER_TOPIC
    prefix: str = "bench"
    topics_per_group: int | None = None  # None: a fifth of the topics, so a group's offsets grow with the cluster

    @property
    def topics(self) -> list[str]:
        n = max(1, self.partitions // self.partitions_per_topic)
        return [f"{self.prefix}-t{i:04d}" for i in range(n)]

    @property
    def group_ids(self) -> list[str]:
        return [f"{self.prefix}-g{i:03d}" for i in range(self.groups)]

    def group_topics(self, index: int) -> list[str]:
        """The topics group `index` commits on: a rotating window so every topic is covered."""
        topics = self.topics
        k = self.topics_per_group or max(1, round(len(topics) * TOPICS_PER_GROUP_SHARE))
        k = min(k, len(topics))
        return [topics[(index * k + j) % len(topics)] for j in range(k)]

    @property
    def committed_offsets(self) -> int:
        return sum(len(self.group_topics(i)) for i in range(self.groups)) * self.partitions_per_topic

    def describe(self) -> str:
        per_group = self.committed_offsets // max(1, self.groups)
        return (f"{len(self.topics)} topics x {self.partitions_per_topic} partitions, {self.groups} groups, "
                f"{self.committed_offsets:,} committed offsets ({per_group:,} per group)")


def _chunks(items: list, n: int) -> list[list]:
    n = max(1, min(n, len(items)))
    return [items[i::n] for i in range(n)]


def _create_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(t, partitions, 1) for t in topics], request_timeout=120)
    for f in futures.values():
        f.result(timeout=180)


def _produce(bootstrap: str, topics: list[str], partitions: int) -> None:
    from confluent_kafka import Producer

    # tansu advances the high watermark per record batch: one record per batch (brokers.md).
    p = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1, "linger.ms": 0,
                  "queue.buffering.max.messages": 1_000_000})
    for t in topics:
        for part in range(partitions):
            p.produce(t, value=b"order", partition=part)
        p.poll(0)
    left = p.flush(300)
    if left:
        raise RuntimeError(f"{left} records not delivered")


def _commit(bootstrap: str, jobs: list[tuple[str, list[str], int]]) -> None:
    from confluent_kafka import Consumer, TopicPartition

    for group, topics, partitions in jobs:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            # Commit offset 0 on even partitions and 1 on odd ones: a known, non-trivial lag of
            # 1 on half of them.
            offs = [TopicPartition(t, p, p % 2) for t in topics for p in range(partitions)]
            c.commit(offsets=offs, asynchronous=False)
        finally:
            c.close()


def build(bootstrap: str, scenario: KafkaScenario, workers: int = 4, log=print) -> dict:
    """Create the scenario; returns how long each step took."""
    timings = {}
    topics = scenario.topics
    with ProcessPoolExecutor(workers) as pool:
        t0 = time.monotonic()
        list(pool.map(_create_topics, [bootstrap] * workers, _chunks(topics, workers), [scenario.partitions_per_topic] * workers))
        timings["create_topics"] = time.monotonic() - t0
        log(f"  created {len(topics)} topics in {timings['create_topics']:.1f}s")
        t0 = time.monotonic()
        list(pool.map(_produce, [bootstrap] * workers, _chunks(topics, workers), [scenario.partitions_per_topic] * workers))
        timings["produce"] = time.monotonic() - t0
        log(f"  produced {len(topics) * scenario.partitions_per_topic} records in {timings['produce']:.1f}s")
        t0 = time.monotonic()
        jobs = [(g, scenario.group_topics(i), scenario.partitions_per_topic) for i, g in enumerate(scenario.group_ids)]
        list(pool.map(_commit, [bootstrap] * workers, _chunks(jobs, workers)))
        timings["commit"] = time.monotonic() - t0
        log(f"  committed {scenario.committed_offsets:,} offsets in {timings['commit']:.1f}s")
    return timings


def expected_lag(scenario: KafkaScenario) -> int:
    """Total lag the scenario creates: every partition holds one record, odd partitions are consumed."""
    per_topic = sum(1 - (p % 2) for p in range(scenario.partitions_per_topic))
    return sum(len(scenario.group_topics(i)) for i in range(scenario.groups)) * per_topic
