"""Every dashboard panel whose metrics the agent exports today returns data from a real
Prometheus scraping a real agent on a real broker with traffic.

Panels reading metrics no registered check emits yet (Redis, Pulsar, DLQ, lag seconds, status)
are listed as pending; they join automatically once their check declares the metrics, and then
need traffic here (the workload already holds a DLQ and a retry topic for that)."""

from __future__ import annotations

import urllib.parse

import promql_parser
import pytest
import yaml

from agent.metrics import BUILD_INFO, SELF_METRICS
from agent.promstack import prometheus_available, start_prometheus
from agent.registry import all_check_classes
from dashboards import generate
from tests.helpers import kafka_commit, kafka_create_topics, kafka_produce, unique, wait_until
from tests.ops.stack import AgentProcess, get_json

pytestmark = pytest.mark.skipif(not prometheus_available(), reason="Debian prometheus missing")

# Systems this test drives traffic for; the dashboards of the others wait for their checks.
DRIVEN_KINDS = {"kafka"}


def _emitted_names() -> set[str]:
    names = {m.name for m in SELF_METRICS + (BUILD_INFO,)}
    for cls in all_check_classes():
        if cls.kind in DRIVEN_KINDS:
            names |= {m.name for m in cls.metrics}
    return names


def _reads(expr: str) -> set[str]:
    found = set()
    promql_parser.walk(promql_parser.parse(expr),
                       lambda n: found.add(n.name) if isinstance(n, promql_parser.VectorSelector) else None)
    return found


@pytest.fixture
def kafka_workload(kafka_bootstrap):
    prefix = unique("dash")
    orders, dlt, retry = f"{prefix}-orders", f"{prefix}-orders.DLT", f"{prefix}-orders-retry"
    kafka_create_topics(kafka_bootstrap, {orders: 2, dlt: 1, retry: 1})
    kafka_produce(kafka_bootstrap, orders, {0: 10, 1: 10})
    kafka_produce(kafka_bootstrap, dlt, {0: 3})
    kafka_produce(kafka_bootstrap, retry, {0: 2})
    kafka_commit(kafka_bootstrap, f"{prefix}-billing", {(orders, 0): 3, (orders, 1): 4})
    kafka_commit(kafka_bootstrap, f"{prefix}-fast", {(orders, 0): 10, (orders, 1): 10})
    return prefix


def test_every_panel_with_exported_metrics_returns_data(tmp_path, kafka_bootstrap, kafka_workload):
    config = tmp_path / "mqwatch.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"interval": "1s", "timeout": "5s"},
        "checks": [{"kind": "kafka", "name": kafka_workload, "bootstrap_servers": kafka_bootstrap,
                    "groups": {"include": [f"^{kafka_workload}-"]}, "topics": {"include": [f"^{kafka_workload}-"]}}],
    }))
    agent = AgentProcess(config)
    prometheus = start_prometheus([agent.address])
    url = prometheus.extra["url"]

    def query(expr):
        doc = get_json(f"{url}/api/v1/query?query={urllib.parse.quote(expr)}")
        assert doc["status"] == "success", (expr, doc)
        return doc["data"]["result"]

    try:
        # enough samples for rate()/increase() over the substituted 1m interval
        wait_until(lambda: query(f'count_over_time(mqwatch_consumer_lag_messages{{cluster="{kafka_workload}"}}[1m]) >= 3'),
                   40, message="three scrapes with lag")
        emitted = _emitted_names()
        ran, pending, empty = [], [], []
        for dashboard, title, expr in generate.panel_queries():
            if not _reads(expr) <= emitted or dashboard in {"redis", "pulsar"}:
                pending.append((dashboard, title))
                continue
            ran.append((dashboard, title))
            if not query(expr):
                empty.append((dashboard, title, expr))
        assert not empty, f"panels without data: {empty}"
        assert len(ran) >= 12, ran
        # the lag the workload created is what the overview shows for the billing group
        lag = query(f'sum by (consumer) (mqwatch_consumer_lag_messages{{cluster="{kafka_workload}"}})')
        assert {r["metric"]["consumer"]: float(r["value"][1]) for r in lag} == {
            f"{kafka_workload}-billing": 13.0, f"{kafka_workload}-fast": 0.0}
    finally:
        agent.stop()
        prometheus.stop()
