"""Topic retention (`retention.ms` via DescribeConfigs), for mqwatch_consumer_retention_headroom_seconds.

Retention deletes a topic's oldest segments whatever any group has consumed: a group whose
oldest unconsumed record is older than the retention loses records. Headroom = retention
minus that age (lag in seconds), 0 once records are being deleted unread.

Read every `retention_refresh` (configs change rarely), all topics in one DescribeConfigs
call (librdkafka sends one request per broker), within the check's remaining time. A topic
without a finite time retention (`retention.ms` -1, `cleanup.policy` without `delete`, or a
broker that answers nothing, as tansu does) has no headroom series.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, ResourceType


def retention_seconds(entries: dict) -> float | None:
    """Seconds of time retention from one topic's config entries (name -> entry with .value), or None."""
    policy = _value(entries, "cleanup.policy")
    if policy is not None and "delete" not in policy.split(","):
        return None  # compaction alone never deletes by age
    ms = _value(entries, "retention.ms")
    try:
        ms = int(ms)
    except (TypeError, ValueError):
        return None
    return ms / 1000.0 if ms > 0 else None


def headroom(retention: float | None, lag_seconds: float | None) -> float | None:
    if retention is None or lag_seconds is None:
        return None
    return max(0.0, retention - lag_seconds)


def _value(entries: dict, name: str):
    entry = entries.get(name)
    return getattr(entry, "value", None) if entry is not None else None


class TopicRetention:
    def __init__(self, refresh: float):
        self.refresh = refresh
        self.seconds: dict = {}  # topic -> retention seconds (finite only)
        self._read_at: float | None = None
        self._requested = False  # request() ran since the last update()
        self._pending: dict | None = None  # ConfigResource -> Future, between request() and update()
        self._problem: str | None = None

    def request(self, admin, topics, timeout: float) -> None:
        """Sends DescribeConfigs for `topics` when a re-read is due; update() reads the answer,
        so the round trip overlaps whatever the caller does in between."""
        now = time.monotonic()
        self._requested, self._pending, self._problem = True, None, None
        if not self.refresh or (self._read_at is not None and now - self._read_at < self.refresh):
            return
        topics = sorted(topics)
        self._read_at = now
        if not topics or timeout <= 0:
            return
        try:
            self._pending = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics],
                                                   request_timeout=timeout)
        except (KafkaException, ValueError) as e:
            self._problem = f"describe_configs: {e}"

    def update(self, admin, topics, timeout: float) -> str | None:
        """Re-reads when due (what request() sent ahead, else `topics` now); returns an error
        message when the read failed (the old values stay)."""
        if not self._requested:
            self.request(admin, topics, timeout)
        self._requested = False
        futures, problem = self._pending, self._problem
        self._pending = self._problem = None
        if futures is None:
            return problem
        seconds, failed = {}, []
        for resource, future in futures.items():
            try:
                value = retention_seconds(future.result(timeout=max(0.0, timeout)))
            except Exception as e:  # one topic's failure (deleted meanwhile, no permission) is that topic's
                failed.append(f"{resource.name}: {e}")
                continue
            if value is not None:
                seconds[resource.name] = value
        self.seconds = seconds
        if failed:
            return f"describe_configs failed for {len(failed)} topic(s), e.g. {failed[0]}"
        return None
