"""Every metric the Pulsar check emits: the shared contract plus Pulsar-only broker health."""

from mqwatch.agent import metrics as m
from mqwatch.agent.metrics import GAUGE, MetricDef

BROKER_HEALTHY = MetricDef(
    "mqwatch_pulsar_broker_healthy", GAUGE,
    "1 if this Pulsar broker passed its admin health check (or, without admin_url, served its /metrics), else 0.",
    ("broker",), example="mqwatch_pulsar_broker_healthy == 0",
)
TOPIC_PARTITIONS = MetricDef(
    "mqwatch_pulsar_topic_partitions", GAUGE, "Partitions of this Pulsar topic seen in this collection (1 when not partitioned).",
    ("queue",), example="mqwatch_pulsar_topic_partitions > 1",
)

# Reasons this check reports in mqwatch_collect_errors_total (besides the core's timeout and
# internal): reading /metrics or the admin API failing, then partial failures and the canary's.
ERROR_REASONS = (
    "connection", "tls", "auth", "permission", "bad_reply", "broker_error", "not_found", "too_large",
    "broker_unhealthy", "dlq_sampling", "canary_produce", "canary_consume", "canary_timeout",
)

METRICS = (
    m.CONSUMER_LAG_MESSAGES,
    m.CONSUMER_LAG_SECONDS,
    m.CONSUMER_MEMBERS,
    m.CONSUMER_STATUS,
    m.CONSUMER_BLOCKED,
    m.PENDING_MESSAGES,
    m.QUEUE_MESSAGES,
    m.QUEUE_PRODUCED,
    m.QUEUE_BYTES,
    m.RETRY_MESSAGES,
    m.DLQ_MESSAGES,
    m.DLQ_MESSAGES_TOTAL,
    m.DLQ_LAST_MESSAGE_TIMESTAMP,
    m.DLQ_REASON_MESSAGES,
    m.BROKERS,
    m.CANARY_ROUNDTRIP,
    m.CANARY_FAILURES,
    *m.CANARY_SEQUENCE_METRICS,
    m.CONSUMER_CONSUMED,
    m.CONSUMER_DRAIN_SECONDS,
    m.CONSUMER_LOST,
    m.CONSUMER_RETENTION_HEADROOM,
    BROKER_HEALTHY,
    TOPIC_PARTITIONS,
)
