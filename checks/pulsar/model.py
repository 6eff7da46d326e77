"""What one collection learned about a Pulsar cluster, whichever source it came from.

Both the /metrics scrape and the admin REST API fill these same structures, so the
check turns them into series one way: the same state gives the same series.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NOT_PARTITIONED = -1
_PARTITION_SUFFIX = re.compile(r"^(?P<base>.+)-partition-(?P<n>\d+)$")


@dataclass
class SubscriptionState:
    backlog: float = 0.0
    unacked: float = 0.0
    consumers: int = 0
    blocked: bool = False
    # Unix ms of the oldest message in the backlog; only the admin API knows it (None otherwise).
    earliest_publish_ms: int | None = None
    # Unix ms of the last acknowledgement (0: never); None where the source does not say.
    last_acked_ms: float | None = None
    # Messages the broker expired from this subscription by its TTL (totalMsgExpired), a counter
    # that restarts when the topic is loaded elsewhere; None where the source does not say.
    expired: float | None = None
    delivered: float | None = None  # msgOutCounter: messages dispatched to this subscription's consumers


@dataclass
class PartitionState:
    produced: float | None = None  # msgInCounter: messages published since the topic was loaded
    storage_bytes: float | None = None
    subscriptions: dict[str, SubscriptionState] = field(default_factory=dict)
    # msgInCounter per broker /metrics endpoint that reported it: each restarts on its own
    # (unload, broker restart), so exported totals track them separately (agent.counters).
    produced_by: dict[str, float] = field(default_factory=dict)

    def produced_counters(self) -> dict[str, float]:
        """Upstream counters of `produced`: per reporting broker, or one ("") from the admin API."""
        if self.produced_by:
            return self.produced_by
        return {} if self.produced is None else {"": self.produced}


@dataclass
class TopicState:
    name: str  # full name: persistent://tenant/namespace/topic
    partitions: dict[int, PartitionState] = field(default_factory=dict)

    def partition(self, n: int) -> PartitionState:
        p = self.partitions.get(n)
        if p is None:
            p = self.partitions[n] = PartitionState()
        return p

    def subscription_names(self) -> set[str]:
        return {s for p in self.partitions.values() for s in p.subscriptions}


@dataclass
class ClusterState:
    topics: dict[str, TopicState] = field(default_factory=dict)
    brokers: dict[str, bool] = field(default_factory=dict)  # broker (host:port) -> healthy
    source: str = ""  # "admin" or "metrics"
    # False when a broker's /metrics or an admin listing could not be read: topics missing
    # from this state may still exist, so per-topic state must not be forgotten for them.
    complete: bool = True

    def topic(self, name: str) -> TopicState:
        t = self.topics.get(name)
        if t is None:
            t = self.topics[name] = TopicState(name)
        return t


def split_partition(name: str) -> tuple[str, int]:
    """`orders-partition-3` -> (`orders`, 3); anything else -> (name, -1)."""
    m = _PARTITION_SUFFIX.match(name)
    if m is None:
        return name, NOT_PARTITIONED
    return m.group("base"), int(m.group("n"))


def full_topic_name(topic: str, namespace: str = "") -> str:
    """The full name from a short (`orders`) or full (`persistent://public/default/orders`) label."""
    if "://" in topic:
        return topic
    if "/" in topic:  # tenant/namespace/topic without a domain
        return "persistent://" + topic
    return f"persistent://{namespace or 'public/default'}/{topic}"


def namespace_and_local(full_name: str) -> tuple[str, str]:
    """`persistent://t/ns/orders` -> (`persistent://t/ns`, `orders`)."""
    head, _, local = full_name.rpartition("/")
    return head, local
