"""Every metric the Kafka check emits: the shared contract plus Kafka-only broker health."""

from mqwatch.agent import metrics as m
from mqwatch.agent.metrics import MetricDef, GAUGE

CONTROLLER_ID = MetricDef("mqwatch_kafka_controller_id", GAUGE, "Broker id of the active controller; -1 when none is known.",
                          example="changes(mqwatch_kafka_controller_id[1h]) > 3")
TOPIC_PARTITIONS = MetricDef("mqwatch_kafka_topic_partitions", GAUGE, "Partitions of this topic.", ("queue",),
                             example="changes(mqwatch_kafka_topic_partitions[1d]) > 0")
UNDER_REPLICATED = MetricDef(
    "mqwatch_kafka_under_replicated_partitions", GAUGE,
    "Partitions of this topic whose in-sync replicas are fewer than their replicas.", ("queue",),
    example="sum by (cluster, queue) (mqwatch_kafka_under_replicated_partitions) > 0",
)
OFFLINE = MetricDef(
    "mqwatch_kafka_offline_partitions", GAUGE, "Partitions of this topic without a leader.", ("queue",),
    example="sum by (cluster) (mqwatch_kafka_offline_partitions) > 0",
)

# Reasons this check reports in mqwatch_collect_errors_total (besides the core's timeout and
# internal): the whole collection failing (connection ... config), then partial failures.
ERROR_REASONS = (
    "connection", "tls", "auth", "permission", "broker_error", "config",
    "list_groups", "describe_group", "group_offsets", "partition_offsets", "time_lag", "dlq_read", "dlq_reason",
)

METRICS = (
    m.CONSUMER_LAG_MESSAGES,
    m.PARTITION_LAG_MESSAGES,
    m.CONSUMER_LAG_SECONDS,
    m.PARTITION_LAG_SECONDS,
    m.CONSUMER_MEMBERS,
    m.CONSUMER_STATE,
    m.CONSUMER_STATUS,
    m.PARTITION_STATUS,
    m.QUEUE_MESSAGES,
    m.QUEUE_PRODUCED,
    m.DLQ_MESSAGES,
    m.DLQ_MESSAGES_TOTAL,
    m.DLQ_LAST_MESSAGE_TIMESTAMP,
    m.DLQ_REASON_MESSAGES,
    m.RETRY_MESSAGES,
    m.CANARY_ROUNDTRIP,
    *m.FLOW_METRICS,
    m.CONSUMER_RETENTION_HEADROOM,
    m.CANARY_FAILURES,
    *m.CANARY_SEQUENCE_METRICS,
    m.BROKERS,
    CONTROLLER_ID,
    TOPIC_PARTITIONS,
    UNDER_REPLICATED,
    OFFLINE,
)
