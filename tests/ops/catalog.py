"""Metric names (and their labels) the alerts and dashboards may use: the catalog, i.e. what the
agent and the registered checks declare (`mqwatch metrics`), nothing else."""

from mqwatch.agent.metrics import HISTOGRAM, catalog


def _exposed(metric) -> dict[str, set[str]]:
    labels = set(metric.all_labels)
    if metric.type == HISTOGRAM:
        return {f"{metric.name}_bucket": labels | {"le"}, f"{metric.name}_sum": labels,
                f"{metric.name}_count": labels}
    return {metric.name: labels}


def allowed_labels() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for entry in catalog():
        names.update(_exposed(entry.metric))
    return names


def allowed_names() -> set[str]:
    return set(allowed_labels())
