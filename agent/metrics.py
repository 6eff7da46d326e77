"""The metric contract: every metric mqwatch can export, with its type, labels and help.

Checks declare which of these they emit (plus their own system-specific ones); the
snapshot builder refuses anything undeclared, and `mqwatch metrics` prints the catalog
that docs/metrics.md must equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GAUGE, COUNTER, HISTOGRAM = "gauge", "counter", "histogram"

# Every series a check emits carries these two; the builder adds them.
BASE_LABELS = ("system", "cluster")


@dataclass(frozen=True)
class MetricDef:
    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    optional_labels: tuple[str, ...] = ()
    example: str = ""  # a PromQL query a user would write with it
    per_check: bool = True  # carries system/cluster labels

    def __post_init__(self):
        if self.type == COUNTER and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name} must end in _total")
        if self.type != COUNTER and self.name.endswith("_total"):
            raise ValueError(f"only counters end in _total: {self.name}")

    @property
    def all_labels(self) -> tuple[str, ...]:
        base = BASE_LABELS if self.per_check else ()
        return base + self.labels + self.optional_labels


def _g(name, help, labels=(), example="", optional=()):
    return MetricDef(name, GAUGE, help, tuple(labels), tuple(optional), example)


def _c(name, help, labels=(), example="", optional=()):
    return MetricDef(name, COUNTER, help, tuple(labels), tuple(optional), example)


# ---- self-metrics: the agent reports on each check it runs --------------------------------
UP = _g("mqwatch_up", "1 if the last collection of this check succeeded, else 0.", example="mqwatch_up == 0")
COLLECT_DURATION = _g(
    "mqwatch_collect_duration_seconds", "How long the last collection of this check took.",
    example="max by (system, cluster) (mqwatch_collect_duration_seconds)",
)
# Reasons the core reports for any check (scheduler.Collector): a collection past its timeout,
# a check that crashed or emitted an undeclared metric. Checks declare theirs (Check.error_reasons).
CORE_ERROR_REASONS = ("timeout", "internal")
COLLECT_ERRORS = _c(
    "mqwatch_collect_errors_total",
    "Collection errors of this check by reason (timeout, connection, auth, broker_error, ...); partial errors count too; "
    "0 from the start for every reason listed below.",
    ["reason"], example="increase(mqwatch_collect_errors_total[10m]) > 0",
)
LAST_SUCCESS = _g(
    "mqwatch_last_success_timestamp_seconds", "Unix time of the last successful collection of this check.",
    example="time() - mqwatch_last_success_timestamp_seconds > 120",
)
SERIES = _g("mqwatch_check_series", "Number of series in the last snapshot of this check.")
BUILD_INFO = MetricDef(
    "mqwatch_build_info", GAUGE, "Always 1; the version of the running mqwatch agent.",
    ("version", "python_version"), per_check=False, example="count by (version) (mqwatch_build_info)",
)
SHARD_INFO = MetricDef(
    "mqwatch_shard_info", GAUGE,
    "Always 1, exported only when the agent runs as one of several shards (--shard I/N): which share of the "
    "work this replica owns. Cluster-wide series come from index 0 only.",
    ("index", "count"), per_check=False, example="count by (count) (mqwatch_shard_info)",
)

SELF_METRICS = (UP, COLLECT_DURATION, COLLECT_ERRORS, LAST_SUCCESS, SERIES)

# ---- the contract every system maps onto -----------------------------------------------
CONSUMER_LAG_MESSAGES = _g(
    "mqwatch_consumer_lag_messages",
    "Messages produced but not yet consumed by this consumer group or subscription, summed over partitions.",
    ["queue", "consumer"], example="topk(10, mqwatch_consumer_lag_messages)",
)
PARTITION_LAG_MESSAGES = _g(
    "mqwatch_partition_lag_messages", "Lag in messages of one partition (granularity: partition).",
    ["queue", "consumer", "partition"],
    example='mqwatch_partition_lag_messages{consumer="billing"}',
)
CONSUMER_LAG_SECONDS = _g(
    "mqwatch_consumer_lag_seconds",
    "Age of the oldest message this consumer has not consumed yet (worst partition); 0 when caught up.",
    ["queue", "consumer"], example="max by (cluster, queue, consumer) (mqwatch_consumer_lag_seconds) > 300",
)
PARTITION_LAG_SECONDS = _g(
    "mqwatch_partition_lag_seconds", "Lag in seconds of one partition (granularity: partition).",
    ["queue", "consumer", "partition"],
    example='topk(5, mqwatch_partition_lag_seconds{consumer="billing"})',
)
CONSUMER_MEMBERS = _g(
    "mqwatch_consumer_members", "Consumers currently joined to this group or subscription.",
    ["consumer"], optional=["queue"], example="mqwatch_consumer_members == 0",
)
CONSUMER_STATE = _g(
    "mqwatch_consumer_state", "1 for the state the broker reports for this consumer group, 0 for the others.",
    ["consumer", "state"], example='mqwatch_consumer_state{state="Empty"} == 1',
)
CONSUMER_STATUS = _g(
    "mqwatch_consumer_status",
    "1 for the evaluated status of this consumer on this queue (ok, lagging, stalled, stopped, rewound), 0 for the others.",
    ["queue", "consumer", "status"], example='mqwatch_consumer_status{status=~"stalled|stopped"} == 1',
)
PARTITION_STATUS = _g(
    "mqwatch_partition_status",
    "1 for the evaluated status of one partition of this consumer (granularity: partition); one series per "
    "partition, labelled with its current status.",
    ["queue", "consumer", "partition", "status"],
    example='count by (cluster, queue, consumer) (mqwatch_partition_status{status="stalled"})',
)
CONSUMER_BLOCKED = _g(
    "mqwatch_consumer_blocked", "1 if the broker stopped dispatching to this subscription (too many unacked messages).",
    ["queue", "consumer"], example="mqwatch_consumer_blocked == 1",
)
CONSUMER_IDLE_SECONDS = _g(
    "mqwatch_consumer_idle_seconds", "Idle time of the least idle consumer of this group.",
    ["queue", "consumer"],
)
QUEUE_MESSAGES = _g(
    "mqwatch_queue_messages", "Messages currently retained in this topic or queue.", ["queue"], optional=["framework"],
    example="sum by (cluster, queue) (mqwatch_queue_messages)",
)
QUEUE_PRODUCED = _c(
    "mqwatch_queue_produced_total",
    "Messages ever produced to this topic or queue (monotonic: upstream counters tracked one by one, only increases added).",
    ["queue"], optional=["framework"],
    example="sum by (queue) (rate(mqwatch_queue_produced_total[5m]))",
)
QUEUE_BYTES = _g("mqwatch_queue_bytes", "Bytes stored for this topic or queue.", ["queue"])
PENDING_MESSAGES = _g(
    "mqwatch_pending_messages", "Messages delivered to a consumer but not acknowledged yet.",
    ["queue"], optional=["consumer", "framework"], example="mqwatch_pending_messages > 1000",
)
PENDING_OLDEST_SECONDS = _g(
    "mqwatch_pending_oldest_seconds", "Age of the oldest delivered but unacknowledged message.",
    ["queue"], optional=["consumer", "framework"], example="mqwatch_pending_oldest_seconds > 600",
)
DELAYED_MESSAGES = _g(
    "mqwatch_delayed_messages", "Messages scheduled for later delivery in this delayed queue.", ["queue"],
    optional=["framework"],
)
DELAYED_OVERDUE_MESSAGES = _g(
    "mqwatch_delayed_overdue_messages", "Delayed messages whose due time has already passed.", ["queue"],
    optional=["framework"], example="mqwatch_delayed_overdue_messages > 0",
)
DELAYED_OVERDUE_SECONDS = _g(
    "mqwatch_delayed_overdue_seconds", "How late the most overdue delayed message is; 0 when none is overdue.",
    ["queue"], optional=["framework"], example="mqwatch_delayed_overdue_seconds > 60",
)
RETRY_MESSAGES = _g(
    "mqwatch_retry_messages", "Messages waiting in a retry queue or topic.", ["queue", "source"],
    example="sum by (cluster, source) (mqwatch_retry_messages) > 100",
)
DLQ_MESSAGES = _g(
    "mqwatch_dlq_messages", "Messages currently in this dead-letter queue.", ["dlq", "source"],
    optional=["consumer", "framework"], example="mqwatch_dlq_messages > 0",
)
DLQ_MESSAGES_TOTAL = _c(
    "mqwatch_dlq_messages_total",
    "Messages that ever arrived in this dead-letter queue "
    "(monotonic, survives retention, removal, broker counter resets and a drained key).",
    ["dlq", "source"], optional=["consumer", "framework"], example="increase(mqwatch_dlq_messages_total[5m]) > 0",
)
DLQ_LAST_MESSAGE_TIMESTAMP = _g(
    "mqwatch_dlq_last_message_timestamp_seconds", "Unix time of the newest message in this dead-letter queue.",
    ["dlq", "source"], optional=["consumer", "framework"],
    example="time() - mqwatch_dlq_last_message_timestamp_seconds",
)
DLQ_REASON_MESSAGES = _g(
    "mqwatch_dlq_reason_messages",
    "Sampled dead letters by failure reason (top reasons; the rest as `other`).",
    ["dlq", "reason"], optional=["framework"], example="topk(5, mqwatch_dlq_reason_messages)",
)
BROKERS = _g("mqwatch_brokers", "Brokers the cluster reports (Kafka metadata, Pulsar active brokers).",
             example="mqwatch_brokers < 3")
CANARY_ROUNDTRIP = MetricDef(
    "mqwatch_canary_roundtrip_seconds", HISTOGRAM,
    "Time from producing a canary message to consuming it back.",
    example="histogram_quantile(0.99, rate(mqwatch_canary_roundtrip_seconds_bucket[5m]))",
)
CANARY_FAILURES = _c(
    "mqwatch_canary_failures_total", "Canary round trips that failed, by stage (produce, consume, timeout).",
    ["stage"], example="increase(mqwatch_canary_failures_total[5m]) > 0",
)

# ---- flow: how each consumer moves (issue 14) ---------------------------------------------
CONSUMER_CONSUMED = _c(
    "mqwatch_consumer_consumed_total",
    "Messages this consumer moved past: the sum of its positions' advances (Kafka committed offsets per partition, "
    "Redis stream group entries-read, Pulsar acknowledged position per partition); a rewind adds nothing.",
    ["queue", "consumer"],
    example="sum by (cluster, queue, consumer) (rate(mqwatch_consumer_consumed_total[5m]))",
)
CONSUMER_DRAIN_SECONDS = _g(
    "mqwatch_consumer_drain_seconds",
    "Estimated seconds until this consumer's lag is zero at its net drain rate (consume minus produce, "
    "an EMA over the status window); 0 when caught up, +Inf when it has lag and is not gaining.",
    ["queue", "consumer"], example="mqwatch_consumer_drain_seconds > 1800",
)
CONSUMER_REPROCESSED = _c(
    "mqwatch_consumer_reprocessed_messages_total",
    "Messages this consumer will consume again because its position moved back (a rewind by N counts N).",
    ["queue", "consumer"], example="increase(mqwatch_consumer_reprocessed_messages_total[10m]) > 1000",
)
PENDING_MAX_DELIVERIES = _g(
    "mqwatch_pending_max_deliveries",
    "Highest delivery count among this consumer's unacknowledged messages (Redis XPENDING; Sidekiq retry count + 1, "
    "BullMQ attemptsMade): a message delivered again and again is a poison message.",
    ["queue"], optional=["consumer", "framework"], example="mqwatch_pending_max_deliveries >= 5",
)
PENDING_REDELIVERED = _g(
    "mqwatch_pending_redelivered_messages",
    "Unacknowledged messages of this consumer delivered more than once (Redis streams XPENDING); not reported "
    "for Pulsar, whose stats carry no per-message delivery count.",
    ["queue"], optional=["consumer"], example="mqwatch_pending_redelivered_messages > 0",
)
CONSUMER_LOST = _c(
    "mqwatch_consumer_lost_messages_total",
    "Messages the broker removed before this consumer read them (Redis stream trimmed under the group, Kafka "
    "retention past the committed offset, Pulsar TTL expiry; Pulsar backlog-quota evictions are not counted: the "
    "broker gives no message count for them).",
    ["queue", "consumer"], example="increase(mqwatch_consumer_lost_messages_total[10m]) > 0",
)
CONSUMER_RETENTION_HEADROOM = _g(
    "mqwatch_consumer_retention_headroom_seconds",
    "Retention minus the age of this consumer's oldest unconsumed message: how long until messages start to be "
    "lost; absent where retention is unknown or infinite.",
    ["queue", "consumer"], example="mqwatch_consumer_retention_headroom_seconds < 3600",
)
CANARY_LOST = _c(
    "mqwatch_canary_lost_messages_total",
    "Canary messages the broker acknowledged that never came back (a sequence gap not filled in time).",
    example="increase(mqwatch_canary_lost_messages_total[15m]) > 0",
)
CANARY_DUPLICATED = _c(
    "mqwatch_canary_duplicated_messages_total", "Canary messages consumed more than once.",
    example="increase(mqwatch_canary_duplicated_messages_total[15m]) > 0",
)
CANARY_REORDERED = _c(
    "mqwatch_canary_reordered_messages_total", "Canary messages consumed after a message sent later.",
    example="increase(mqwatch_canary_reordered_messages_total[15m]) > 0",
)
FLOW_METRICS = (CONSUMER_CONSUMED, CONSUMER_DRAIN_SECONDS, CONSUMER_REPROCESSED, CONSUMER_LOST)
CANARY_SEQUENCE_METRICS = (CANARY_LOST, CANARY_DUPLICATED, CANARY_REORDERED)

CONTRACT_METRICS = (
    CONSUMER_LAG_MESSAGES, PARTITION_LAG_MESSAGES, CONSUMER_LAG_SECONDS, PARTITION_LAG_SECONDS,
    CONSUMER_MEMBERS, CONSUMER_STATE, CONSUMER_STATUS, PARTITION_STATUS, CONSUMER_BLOCKED, CONSUMER_IDLE_SECONDS,
    QUEUE_MESSAGES, QUEUE_PRODUCED, QUEUE_BYTES, PENDING_MESSAGES, PENDING_OLDEST_SECONDS,
    DELAYED_MESSAGES, DELAYED_OVERDUE_MESSAGES, DELAYED_OVERDUE_SECONDS, RETRY_MESSAGES,
    DLQ_MESSAGES, DLQ_MESSAGES_TOTAL, DLQ_LAST_MESSAGE_TIMESTAMP, DLQ_REASON_MESSAGES, BROKERS,
    CANARY_ROUNDTRIP, CANARY_FAILURES,
) + FLOW_METRICS + (PENDING_MAX_DELIVERIES, PENDING_REDELIVERED, CONSUMER_RETENTION_HEADROOM) + CANARY_SEQUENCE_METRICS


@dataclass
class CatalogEntry:
    metric: MetricDef
    systems: list[str] = field(default_factory=list)


def catalog(check_classes=None) -> list[CatalogEntry]:
    """Every metric mqwatch can export: self-metrics plus what each registered check declares."""
    from mqwatch.agent.registry import all_check_classes

    classes = all_check_classes() if check_classes is None else check_classes
    entries: dict[str, CatalogEntry] = {}
    for m in (BUILD_INFO, SHARD_INFO) + SELF_METRICS:
        entries[m.name] = CatalogEntry(m, ["all"])
    for cls in sorted(classes, key=lambda c: c.kind):
        for m in cls.metrics:
            entry = entries.get(m.name)
            if entry is None:
                entries[m.name] = CatalogEntry(m, [cls.kind])
            elif entry.metric != m:
                raise ValueError(f"{cls.kind} redefines metric {m.name} differently")
            elif "all" not in entry.systems:
                entry.systems.append(cls.kind)
    return sorted(entries.values(), key=lambda e: e.metric.name)


def render_markdown(entries: list[CatalogEntry]) -> str:
    lines = [
        "# mqwatch metrics",
        "",
        "Generated by `mqwatch metrics --format markdown`; a test keeps this file identical to it.",
        "Every series of a check carries `system` (kafka, redis, pulsar) and `cluster` (the check's `name`).",
        "Labels in *italics* appear only where they apply. `framework` is on every Redis queue, delayed, pending",
        "and DLQ series: `sidekiq`, `rq`, `bullmq`, `celery`, or `plain` for keys matched by the `keys` patterns,",
        "so the same queue name in several job frameworks is several series.",
        "",
        "| metric | type | labels | systems | help | example |",
        "|---|---|---|---|---|---|",
    ]
    for e in entries:
        m = e.metric
        labels = [f"`{lbl}`" for lbl in m.labels] + [f"*`{lbl}`*" for lbl in m.optional_labels]
        example = f"`{m.example}`" if m.example else ""
        lines.append(
            f"| `{m.name}` | {m.type} | {', '.join(labels)} | {', '.join(e.systems)} | {m.help} | "
            f"{example.replace('|', '&#124;')} |"
        )
    lines += ["", "The agent also exports the standard `process_*` metrics of its own process "
                  "(CPU, memory, open file descriptors).", ""] + _error_reasons_markdown()
    return "\n".join(lines) + "\n"


def _error_reasons_markdown() -> list[str]:
    from mqwatch.agent.registry import all_check_classes

    rows = [("all", CORE_ERROR_REASONS)] + [(c.kind, tuple(c.error_reasons)) for c in
                                              sorted(all_check_classes(), key=lambda c: c.kind) if c.error_reasons]
    return ["## Reasons of `mqwatch_collect_errors_total`", "",
            "Every check exports the counter at 0 for each of its reasons from its first collection, so",
            "`increase()` sees the first error. A reason not listed here still counts when it happens.", "",
            "| system | reasons |", "|---|---|"] + [f"| {kind} | {', '.join(f'`{r}`' for r in reasons)} |"
                                                   for kind, reasons in rows]


def render_table(entries: list[CatalogEntry]) -> str:
    rows = [(e.metric.name, e.metric.type, ",".join(e.metric.labels + e.metric.optional_labels), ",".join(e.systems))
            for e in entries]
    widths = [max(len(r[i]) for r in rows + [("metric", "type", "labels", "systems")]) for i in range(4)]
    out = ["  ".join(h.ljust(w) for h, w in zip(("metric", "type", "labels", "systems"), widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out) + "\n"
