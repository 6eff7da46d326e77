"""Metric names (and their labels) the alerts and dashboards may use: the catalog, plus names the
check issues spell out for checks that have not landed on this branch yet.

PENDING_CHECK_METRICS must shrink to nothing as the Kafka, Redis and Pulsar checks merge:
once a check declares a name, test_pending_check_metric_names_are_removed_... fails until it is
removed from here.
"""

from agent.metrics import BASE_LABELS, CONTRACT_METRICS, HISTOGRAM, catalog

# name -> labels besides system/cluster
PENDING_CHECK_METRICS: dict[str, tuple[str, ...]] = {}


def _exposed(metric) -> dict[str, set[str]]:
    labels = set(metric.all_labels)
    if metric.type == HISTOGRAM:
        return {f"{metric.name}_bucket": labels | {"le"}, f"{metric.name}_sum": labels,
                f"{metric.name}_count": labels}
    return {metric.name: labels}


def catalog_labels() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for entry in catalog():
        names.update(_exposed(entry.metric))
    # Contract metrics (lag seconds, DLQ, delayed, canary) belong to checks still being merged;
    # they are in agent/metrics.py already, so dashboards and alerts may rely on them.
    for metric in CONTRACT_METRICS:
        names.update(_exposed(metric))
    return names


def catalog_names() -> set[str]:
    return set(catalog_labels())


def allowed_labels() -> dict[str, set[str]]:
    allowed = catalog_labels()
    for name, labels in PENDING_CHECK_METRICS.items():
        allowed.setdefault(name, set(BASE_LABELS) | set(labels))
    return allowed


def allowed_names() -> set[str]:
    return set(allowed_labels())
