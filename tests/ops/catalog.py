"""Metric names the alerts and dashboards may use: the catalog, plus names the check issues
spell out for checks that have not landed on this branch yet.

PENDING_CHECK_METRICS must shrink to nothing as the Kafka, Redis and Pulsar checks merge:
once a check declares a name, the test below fails until it is removed from here.
"""

from agent.metrics import CONTRACT_METRICS, HISTOGRAM, catalog

PENDING_CHECK_METRICS = {
    # issue 6 (Pulsar): broker health
    "mqwatch_pulsar_broker_healthy",
    # issue 5 (Redis): server health from INFO ("used memory and its ratio to maxmemory,
    # evicted keys, replication link status"); names follow redis_exporter's.
    "mqwatch_redis_memory_used_bytes",
    "mqwatch_redis_memory_max_bytes",
    "mqwatch_redis_evicted_keys_total",
    "mqwatch_redis_master_link_up",
}


def _exposed_names(metric) -> set[str]:
    if metric.type == HISTOGRAM:
        return {f"{metric.name}_{s}" for s in ("bucket", "sum", "count")}
    return {metric.name}


def catalog_names() -> set[str]:
    names = set()
    for entry in catalog():
        names |= _exposed_names(entry.metric)
    # Contract metrics (lag seconds, DLQ, delayed, canary) belong to checks still being merged;
    # they are part of agent/metrics.py already, so dashboards and alerts may rely on them.
    for metric in CONTRACT_METRICS:
        names |= _exposed_names(metric)
    return names


def allowed_names() -> set[str]:
    return catalog_names() | PENDING_CHECK_METRICS
