"""Every dashboard panel returns data from a real Prometheus scraping a real agent that watches
the demo's brokers with the demo's traffic (the e-commerce workload of `mqwatch demo`).

A panel is checked once every metric it reads is declared by a check whose demo part runs here;
panels of systems whose check or demo part has not landed yet are reported as pending and join
on their own when it does."""

from __future__ import annotations

import promql_parser
import pytest
import yaml

from mqwatch.agent.demo import start_parts, stop_parts
from mqwatch.agent.metrics import BUILD_INFO, SELF_METRICS
from mqwatch.agent.registry import get_check_class
from mqwatch.dashboards import generate
from tests.helpers import wait_until
from tests.ops.stack import AgentProcess, prometheus_available, prometheus_query, start_prometheus_for

pytestmark = pytest.mark.skipif(not prometheus_available(), reason="Debian prometheus missing")


def _reads(expr: str) -> set[str]:
    found = set()
    promql_parser.walk(promql_parser.parse(expr),
                       lambda n: found.add(n.name) if isinstance(n, promql_parser.VectorSelector) else None)
    return found


def _systems(expr: str) -> set[str]:
    """The systems a query pins with system="..." (none: it reads every system)."""
    found = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.update(m.value for m in node.matchers.matchers if m.name == "system")

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


# Metrics of opt-in features: exported only by checks configured with that option.
OPT_IN = {"canary": {"mqwatch_canary_roundtrip_seconds_bucket", "mqwatch_canary_failures_total",
                    "mqwatch_canary_lost_messages_total", "mqwatch_canary_duplicated_messages_total",
                    "mqwatch_canary_reordered_messages_total"}}
# Metrics the demo's brokers cannot give: tansu answers DescribeConfigs with nothing (no
# retention.ms); pulsar-lite has no admin API (no TTL or backlog quota) and does not count
# TTL expiries. Their panels are checked by their PromQL only (tests/ops/test_dashboards.py).
NOT_ON_DEMO_BROKERS = {
    "kafka": {"mqwatch_consumer_retention_headroom_seconds"},
    "pulsar": {"mqwatch_consumer_retention_headroom_seconds", "mqwatch_consumer_lost_messages_total"},
}


def _emitted_by(checks: list[dict]) -> dict[str, set[str]]:
    own = {m.name for m in SELF_METRICS + (BUILD_INFO,)} | {"up"}  # up: Prometheus' scrape of the agent
    emitted: dict[str, set[str]] = {}
    for check in checks:
        names = {m.name for m in get_check_class(check["kind"]).metrics}
        names |= {f"{n}_bucket" for n in names}  # histograms are read through their buckets
        for option, metrics in OPT_IN.items():
            if not check.get(option):
                names -= metrics
        emitted.setdefault(check["kind"], set()).update((own | names) - NOT_ON_DEMO_BROKERS.get(check["kind"], set()))
    return emitted


def _answerable(expr: str, emitted_by: dict[str, set[str]]) -> bool:
    """True when the running checks emit every metric the query reads, for the systems it pins."""
    systems = _systems(expr) or set(emitted_by)
    emitted = set().union(*(emitted_by.get(s, set()) for s in systems))
    return _reads(expr) <= emitted


@pytest.fixture(scope="module")
def demo_parts():
    parts = start_parts()
    yield parts
    stop_parts(parts)


def _prepare_like_production(checks):
    """A Redis that holds queues runs with maxmemory set (noeviction); the demo's does not."""
    import redis

    for check in checks:
        if check["kind"] == "redis":
            r = redis.Redis.from_url(check["url"])
            r.config_set("maxmemory", 256 * 1024 * 1024)
            r.close()


@pytest.mark.timeout(180)
def test_every_panel_returns_data_on_the_demo_workload(tmp_path, demo_parts):
    checks = [c for part in demo_parts for c in part.checks]
    kinds = {c["kind"] for c in checks}
    assert "kafka" in kinds and "redis" in kinds, kinds
    _prepare_like_production(checks)
    config = tmp_path / "mqwatch.yaml"
    config.write_text(yaml.safe_dump({"agent": {"interval": "1s", "timeout": "5s"}, "checks": checks}))
    agent = AgentProcess(config)
    prometheus = start_prometheus_for([agent.address])
    url = prometheus.extra["url"]

    def query(expr):
        return prometheus_query(url, expr)

    try:
        # every check scraped several times: enough samples for rate()/increase() over 1m
        wait_until(lambda: len(query("count_over_time(mqwatch_up[1m]) >= 4") or []) == len(checks), 60,
                   message="four scrapes of every check")
        emitted_by = _emitted_by(checks)
        ran, pending, empty = [], [], []
        for dashboard, title, expr in generate.panel_queries():
            if not _answerable(expr, emitted_by):
                pending.append(f"{dashboard}/{title}")
                continue
            ran.append(f"{dashboard}/{title}")
            if not query(expr):
                empty.append((dashboard, title, expr))
        print(f"panels checked: {len(ran)}; pending until their checks land: {pending}")
        assert not empty, f"panels without data: {empty}"
        assert len(ran) >= 30, ran
        # the variables' queries return values too
        for name in generate.DASHBOARDS:
            doc = __import__("json").loads(generate.render(name))
            for var in doc["templating"]["list"]:
                if var["type"] == "query":
                    selector = generate.substitute(var["query"].split("(", 1)[1].rsplit(",", 1)[0])
                    if _answerable(selector, emitted_by):
                        assert query(selector), f"{name}: variable {var['name']} has no values"
    finally:
        agent.stop()
        prometheus.stop()
