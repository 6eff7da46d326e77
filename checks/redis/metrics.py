"""Every metric the Redis check emits: the shared contract plus Redis server health."""

from mqwatch.agent import metrics as m
from mqwatch.agent.metrics import COUNTER, GAUGE, MetricDef


def _g(name, help, labels=(), example=""):
    return MetricDef(name, GAUGE, help, tuple(labels), (), example)


def _c(name, help, labels=(), example=""):
    return MetricDef(name, COUNTER, help, tuple(labels), (), example)


QUEUE_LATENCY = _g(
    "mqwatch_redis_queue_latency_seconds",
    "Age of the oldest job waiting in this job-framework queue (Sidekiq/RQ latency; BullMQ counts prioritized "
    "jobs; Celery: since mqwatch first saw the oldest ready message); 0 when empty.",
    ["queue", "framework"],
    example="max by (cluster, framework, queue) (mqwatch_redis_queue_latency_seconds) > 300",
)
QUEUE_JOBS = _g(
    "mqwatch_redis_queue_jobs",
    "Jobs of this job-framework queue by the framework's own state name: BullMQ getJobCounts() states (waiting, "
    "prioritized, waiting-children, active, delayed, failed); RQ registries (queued, started, scheduled, deferred, "
    "failed).",
    ["queue", "framework", "state"],
    example='mqwatch_redis_queue_jobs{state="waiting-children"} > 0',
)
QUEUE_PAUSED = _g(
    "mqwatch_redis_queue_paused",
    "1 if this BullMQ queue is paused (its jobs wait on purpose: not a stopped worker), else 0.",
    ["queue", "framework"],
    example="mqwatch_redis_queue_latency_seconds > 300 unless on (cluster, framework, queue) "
            "(mqwatch_redis_queue_paused == 1)",
)
WORKERS = _g(
    "mqwatch_redis_workers",
    "Live worker processes of this job framework (Sidekiq processes with a heartbeat, RQ workers registered).",
    ["framework"], example='mqwatch_redis_workers{framework="sidekiq"} == 0',
)
QUEUE_FRAMEWORK = _g(
    "mqwatch_redis_queue_framework", "Always 1: the job framework that owns this queue (sidekiq, rq, bullmq, celery).",
    ["queue", "framework"],
    example="mqwatch_queue_messages * on (cluster, queue) group_left (framework) mqwatch_redis_queue_framework",
)
KEYS_SCANNED = _g("mqwatch_redis_keys_scanned", "Keys matched by the configured patterns in the last cycle.")
KEY_BUDGET_EXCEEDED = _g(
    "mqwatch_redis_key_budget_exceeded", "1 if the last scan stopped at max_keys, so some keys were not reported.",
    example="mqwatch_redis_key_budget_exceeded == 1",
)
USED_MEMORY = _g("mqwatch_redis_used_memory_bytes", "Memory Redis has allocated (INFO used_memory).")
MAXMEMORY = _g("mqwatch_redis_maxmemory_bytes", "Configured maxmemory; 0 means no limit.")
MEMORY_RATIO = _g(
    "mqwatch_redis_memory_used_ratio", "used_memory / maxmemory; absent when maxmemory is 0 (no limit).",
    example="mqwatch_redis_memory_used_ratio > 0.9",
)
EVICTED = _c("mqwatch_redis_evicted_keys_total", "Keys evicted because of maxmemory.",
             example="increase(mqwatch_redis_evicted_keys_total[5m]) > 0")
EXPIRED = _c("mqwatch_redis_expired_keys_total", "Keys removed because their TTL expired.")
REJECTED = _c("mqwatch_redis_rejected_connections_total", "Connections refused because of maxclients.",
              example="increase(mqwatch_redis_rejected_connections_total[5m]) > 0")
CONNECTED_CLIENTS = _g("mqwatch_redis_connected_clients", "Client connections open now.")
BLOCKED_CLIENTS = _g("mqwatch_redis_blocked_clients", "Clients blocked in BLPOP/BRPOP/XREAD and similar (idle workers).")
ROLE = _g("mqwatch_redis_replication_role", "1 for the server's replication role (master, replica), 0 for the other.",
          ["role"], example='mqwatch_redis_replication_role{role="master"} == 1')
CONNECTED_REPLICAS = _g("mqwatch_redis_connected_replicas", "Replicas attached to this master.")
MASTER_LINK_UP = _g("mqwatch_redis_master_link_up", "On a replica: 1 if the link to its master is up.",
                    example="mqwatch_redis_master_link_up == 0")
RDB_LAST_SAVE_OK = _g("mqwatch_redis_rdb_last_bgsave_ok", "1 if the last RDB save succeeded.",
                      example="mqwatch_redis_rdb_last_bgsave_ok == 0")
AOF_LAST_WRITE_OK = _g("mqwatch_redis_aof_last_write_ok", "1 if the last AOF write succeeded; absent when AOF is off.",
                       example="mqwatch_redis_aof_last_write_ok == 0")
UPTIME = _g("mqwatch_redis_uptime_seconds", "Seconds since the Redis server started.",
            example="mqwatch_redis_uptime_seconds < 300")

SERVER_METRICS = (
    USED_MEMORY, MAXMEMORY, MEMORY_RATIO, EVICTED, EXPIRED, REJECTED, CONNECTED_CLIENTS, BLOCKED_CLIENTS,
    ROLE, CONNECTED_REPLICAS, MASTER_LINK_UP, RDB_LAST_SAVE_OK, AOF_LAST_WRITE_OK, UPTIME,
)

# Reasons this check reports in mqwatch_collect_errors_total (besides the core's timeout and
# internal): the server unreachable or refusing (connection ... config), then partial failures.
ERROR_REASONS = (
    "connection", "tls", "auth", "permission", "config",
    "bad_reply", "key_changed", "key_budget", "bad_payload", "dlq_type", "stream_lag_limit",
)

METRICS = (
    m.QUEUE_MESSAGES,
    m.QUEUE_PRODUCED,
    m.PENDING_MESSAGES,
    m.PENDING_OLDEST_SECONDS,
    m.DELAYED_MESSAGES,
    m.DELAYED_OVERDUE_MESSAGES,
    m.DELAYED_OVERDUE_SECONDS,
    m.CONSUMER_LAG_MESSAGES,
    m.CONSUMER_LAG_SECONDS,
    m.CONSUMER_MEMBERS,
    m.CONSUMER_IDLE_SECONDS,
    m.CONSUMER_STATUS,
    *m.FLOW_METRICS,
    m.PENDING_MAX_DELIVERIES,
    m.PENDING_REDELIVERED,
    m.CANARY_ROUNDTRIP,
    m.CANARY_FAILURES,
    *m.CANARY_SEQUENCE_METRICS,
    m.DLQ_MESSAGES,
    m.DLQ_MESSAGES_TOTAL,
    m.DLQ_LAST_MESSAGE_TIMESTAMP,
    m.DLQ_REASON_MESSAGES,
    QUEUE_LATENCY,
    QUEUE_FRAMEWORK,
    QUEUE_JOBS,
    QUEUE_PAUSED,
    WORKERS,
    KEYS_SCANNED,
    KEY_BUDGET_EXCEEDED,
) + SERVER_METRICS
