"""Pulsar's broker /metrics text -> ClusterState, with prometheus-client's parser.

Label layouts seen in the wild, all accepted:
- real Pulsar: topic="persistent://public/default/orders-partition-0" (partition in the name)
- real Pulsar with splitTopicAndPartitionLabel: topic="persistent://public/default/orders", partition="0"
- pulsar-lite: topic="orders", namespace="public/default", partition="0" (or "-1" when not partitioned)
Samples without a topic label (namespace- or broker-level aggregates) are ignored.
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from mqwatch.checks.pulsar.model import NOT_PARTITIONED, ClusterState, SubscriptionState, full_topic_name, split_partition


class ExpositionError(ValueError):
    pass


_TOPIC_FIELDS = {"pulsar_in_messages_total": "produced", "pulsar_storage_size": "storage_bytes"}
_SUBSCRIPTION_FIELDS = {
    "pulsar_subscription_back_log": "backlog",
    "pulsar_subscription_unacked_messages": "unacked",
    "pulsar_subscription_consumers_count": "consumers",
    "pulsar_subscription_blocked_on_unacked_messages": "blocked",
    "pulsar_subscription_last_acked_timestamp": "last_acked_ms",
    "pulsar_out_messages_total": "delivered",  # with a subscription label: that subscription's msgOutCounter
    "pulsar_subscription_total_msg_expired": "expired",  # real Pulsar (a gauge there, counting up); not pulsar-lite
}
_WANTED = set(_TOPIC_FIELDS) | set(_SUBSCRIPTION_FIELDS)
# Family names as the parser reports them: counters lose their _total suffix.
_WANTED_FAMILIES = _WANTED | {n[: -len("_total")] for n in _WANTED if n.endswith("_total")}


class _TopicNames:
    """Caches label -> (full base topic, partition): 10,000 topics repeat across ~10 metrics."""

    def __init__(self):
        self._cache: dict = {}

    def resolve(self, labels: dict) -> tuple[str, int] | None:
        topic = labels.get("topic")
        if not topic:
            return None
        key = (topic, labels.get("namespace", ""), labels.get("partition", ""))
        hit = self._cache.get(key)
        if hit is None:
            base, n = split_partition(topic)
            if n == NOT_PARTITIONED and key[2] not in ("", "-1"):
                try:
                    n = int(key[2])
                except ValueError:
                    n = NOT_PARTITIONED
            hit = self._cache[key] = (full_topic_name(base, key[1]), n)
        return hit


# Only the lines of the families above reach the parser: a broker's /metrics carries ~35
# per-topic families and mqwatch reads 6, so parsing the rest would be wasted work.
_LINE_PREFIXES = tuple(
    p for n in _WANTED for p in (n + "{", n + " ", f"# TYPE {n} ", f"# HELP {n} ")
) + tuple(p for n in _WANTED_FAMILIES - _WANTED for p in (f"# TYPE {n} ", f"# HELP {n} "))


def relevant_lines(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if line.startswith(_LINE_PREFIXES)) + "\n"


_TOPIC_LABEL = re.compile(r'[{,]\s*topic="([^"\\]*)"')
_NAMESPACE_LABEL = re.compile(r'[{,]\s*namespace="([^"\\]*)"')


def line_topic(line: str) -> str | None:
    """The full base topic name a sample line is about (None for lines without a topic)."""
    m = _TOPIC_LABEL.search(line)
    if m is None:
        return None
    ns = _NAMESPACE_LABEL.search(line)
    return full_topic_name(split_partition(m.group(1))[0], ns.group(1) if ns else "")


def _kept(line: str, topics: set[str]) -> bool:
    if line.startswith("#"):
        return True
    topic = line_topic(line)
    return topic is None or topic in topics


def topics_in(text: str) -> set[str]:
    """Every topic the relevant lines of `text` name, without parsing them (for sharding)."""
    return {t for t in map(line_topic, relevant_lines(text).split("\n")) if t is not None}


def parse_exposition(text: str, state: ClusterState | None = None, source: str = "",
                     topics: set[str] | None = None) -> ClusterState:
    """Adds what `text` says about topics and subscriptions to `state` (a new one by default).

    `source` names the broker the text came from: published counters are also kept per source.
    `topics`: parse only the lines of these topics (a shard's), the parser being the cost.

    Raises ExpositionError for text the Prometheus parser rejects; nothing is added then.
    """
    names = _TopicNames()
    staged: list = []
    try:
        lines = relevant_lines(text)
        if topics is not None:
            lines = "\n".join(line for line in lines.split("\n") if _kept(line, topics))
        for family in text_string_to_metric_families(lines):
            if family.name not in _WANTED_FAMILIES:
                continue
            for sample in family.samples:
                if sample.name in _WANTED:
                    staged.append(sample)
    except Exception as e:  # the parser raises ValueError, IndexError, ... on malformed lines
        raise ExpositionError(f"unparsable exposition: {type(e).__name__}: {e}") from None

    state = state if state is not None else ClusterState(source="metrics")
    for sample in staged:
        if sample.value != sample.value:  # NaN: no answer for this series
            continue
        labels = sample.labels
        where = names.resolve(labels)
        if where is None:
            continue
        topic, n = where
        part = state.topic(topic).partition(n)
        name = sample.name
        field = _TOPIC_FIELDS.get(name)
        if field is not None:
            setattr(part, field, (getattr(part, field) or 0.0) + sample.value)
            if field == "produced":
                part.produced_by[source] = part.produced_by.get(source, 0.0) + sample.value
            continue
        sub_name = labels.get("subscription")
        if not sub_name:
            continue
        sub = part.subscriptions.get(sub_name)
        if sub is None:
            sub = part.subscriptions[sub_name] = SubscriptionState()
        field = _SUBSCRIPTION_FIELDS[name]
        if field == "blocked":
            sub.blocked = sub.blocked or sample.value > 0
        elif field == "consumers":
            sub.consumers += int(sample.value)
        elif field == "last_acked_ms":
            sub.last_acked_ms = max(sub.last_acked_ms or 0.0, sample.value)
        elif field in ("expired", "delivered"):
            setattr(sub, field, (getattr(sub, field) or 0.0) + sample.value)
        else:
            setattr(sub, field, getattr(sub, field) + sample.value)
    return state
