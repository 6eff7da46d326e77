"""Shared test helpers: build checks from YAML-shaped dicts, and drive real brokers."""

from __future__ import annotations

import itertools
import time

import yaml

from mqwatch.agent.config import parse_config
from mqwatch.agent.app import build_check
from mqwatch.agent.scheduler import Collector
from mqwatch.agent.snapshot import Snapshot

_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test uses, so tests can share one broker."""
    return f"{prefix}-{int(time.time() * 1000) % 10_000_000}-{next(_counter)}"


def config_for(check: dict, agent: dict | None = None):
    doc = {"agent": agent or {"interval": "1s", "timeout": "5s"}, "checks": [check]}
    return parse_config(yaml.safe_dump(doc), "test.yaml")


def make_check(check: dict):
    cfg = config_for(check).checks[0]
    return cfg, build_check(cfg)


def collect_once(check_or_dict, timeout: float | None = None) -> Snapshot:
    """One collection through the same Collector that `run` and `check` use."""
    if isinstance(check_or_dict, dict):
        cfg, check = make_check(check_or_dict)
        timeout = timeout or cfg.timeout
    else:
        check = check_or_dict
        timeout = timeout or check.timeout
    return Collector(check, timeout).collect()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message} (last value {last!r})")


# ---- Kafka ---------------------------------------------------------------------------------

def kafka_create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(t, n, 1) for t, n in topics.items()]).values():
        f.result(timeout=10)


def kafka_produce(bootstrap: str, topic: str, counts: dict[int, int], headers=None, value=b"order", timestamp_ms=None) -> None:
    """Produce counts[partition] records to each partition.

    tansu advances the high watermark per record batch, so every record is its own batch
    here (batch.num.messages=1); see ../shared/brokers.md.
    """
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1, "linger.ms": 0})
    for partition, n in counts.items():
        for _ in range(n):
            kwargs = {"headers": headers} if headers else {}
            if timestamp_ms is not None:
                kwargs["timestamp"] = timestamp_ms
            p.produce(topic, value=value, partition=partition, **kwargs)
            p.poll(0)
    assert p.flush(10) == 0, "records not delivered"


def kafka_commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit offsets for a group without joining it (an assign()-style committer)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def kafka_delete_group(bootstrap: str, group: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.delete_consumer_groups([group], request_timeout=10).values():
        f.result(timeout=10)
