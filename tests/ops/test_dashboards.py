"""The Grafana dashboards: committed JSON equals the generator's output, every panel query parses
and reads only catalog metrics with labels they have, and the overview links to every detail
dashboard. (That every query returns data is the job of the end-to-end test against Prometheus.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
import pytest

from mqwatch.dashboards import generate
from tests.ops.catalog import allowed_labels as _catalog_labels

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("overview", "kafka", "redis", "pulsar", "dlq")


def _load(name):
    return json.loads((ROOT / "dashboards" / f"{name}.json").read_text())


def _panels(doc):
    return [p for p in doc["panels"] if p["type"] != "row"]


substitute = generate.substitute


def selectors(expr: str):
    return [(name, set(matchers)) for name, matchers in matchers_of(expr)]


def matchers_of(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric, {label: matcher value}) of every selector in the query."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node.name, {m.name: m.value for m in node.matchers.matchers}))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


# Series Prometheus itself makes, which the dashboards read besides the catalog: the scrape
# health of each agent and the state of the mqwatch alert rules.
PROMETHEUS_SERIES = {"up": {"job", "instance"},
                     "ALERTS": {"alertname", "alertstate", "severity", "system", "cluster", "queue", "consumer", "dlq",
                                "source", "job", "status"}}


def allowed_labels():
    return _catalog_labels() | PROMETHEUS_SERIES


def _variable_labels(doc) -> dict[str, str]:
    """variable name -> the label its values come from (label_values(..., label))."""
    out = {}
    for var in doc["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", var.get("query") or "")
        if match:
            out[var["name"]] = match.group(2)
    return out


def _by_labels(expr: str) -> set[str]:
    """The labels a query's outermost aggregation keeps (what a table's columns or a series' labels are)."""
    labels = set()
    for group in re.findall(r"\bby \(([^)]*)\)", expr):
        labels |= {label.strip() for label in group.split(",")}
    return labels


def test_committed_dashboards_equal_generator_output():
    for name in NAMES:
        assert (ROOT / "dashboards" / f"{name}.json").read_text() == generate.render(name), (
            f"dashboards/{name}.json is stale: run `python -m mqwatch.dashboards.generate`")
    assert generate.main(["--check"]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_every_panel_query_parses_and_reads_catalog_metrics_by_their_labels(name):
    allowed = allowed_labels()
    queries = 0
    for panel in _panels(_load(name)):
        for target in panel["targets"]:
            expr = substitute(target["expr"])
            sels = selectors(expr)
            assert sels, f"{panel['title']}: no metric in {expr}"
            for metric, labels in sels:
                assert metric in allowed, f"{name}/{panel['title']}: {metric} is not in the catalog"
                assert labels <= allowed[metric], (
                    f"{name}/{panel['title']}: {metric} has no label {labels - allowed[metric]} "
                    "(filtering on it would hide every series once a value is picked)")
            queries += 1
    assert queries >= 5


@pytest.mark.parametrize("name", NAMES)
def test_template_variables_resolve_to_real_labels(name):
    doc = _load(name)
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert {"datasource", "cluster", "queue", "consumer"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    allowed = allowed_labels()
    for var in ("cluster", "queue", "consumer"):
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", variables[var]["query"])
        assert match, variables[var]["query"]
        (metric, labels), = selectors(substitute(match.group(1)))
        assert match.group(2) in allowed[metric] and labels <= allowed[metric], variables[var]["query"]


@pytest.mark.parametrize("name", NAMES)
def test_panels_have_descriptions_units_and_the_datasource_variable(name):
    doc = _load(name)
    assert doc["uid"] == generate.UID[name] and doc["description"]
    for panel in _panels(doc):
        assert panel["description"], panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        exprs = [substitute(t["expr"]) for t in panel["targets"]]
        reads = {metric for e in exprs for metric, _ in selectors(e)}
        if all(m.endswith("_seconds") for m in reads) and not any(e.startswith("count") for e in exprs):
            assert panel["fieldConfig"]["defaults"]["unit"] == "s", f"{panel['title']} shows seconds without unit s"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))


def _dashboard_links(panel):
    return [link for link in panel["fieldConfig"]["defaults"].get("links", []) if link["url"].startswith("/d/")]


def test_overview_links_to_every_detail_dashboard():
    doc = _load("overview")
    urls = [link["url"] for p in _panels(doc) for link in _dashboard_links(p)]
    targets = set()
    for url in urls:
        path = url.split("?")[0]
        for field in ("${__field.labels.system}", "${__data.fields.system}"):  # resolved per clicked series/row
            if field in path:
                path = path.replace(field, "{system}")
        if "{system}" in path:
            targets |= {path.replace("{system}", s) for s in generate.SYSTEMS}
        else:
            targets.add(path)
        assert "${__url_time_range}" in url and re.search(r"var-cluster=\$\{__(field\.labels|data\.fields)\.cluster\}", url), url
    assert {f"/d/{generate.UID[n]}" for n in ("kafka", "redis", "pulsar", "dlq")} <= targets
    existing = {f"/d/{_load(n)['uid']}" for n in NAMES}
    assert targets <= existing, targets - existing


@pytest.mark.parametrize("name", NAMES)
def test_data_links_use_fields_the_panel_really_has(name):
    """A table of an instant query has columns (${__data.fields.x}); a time series has series labels
    (${__field.labels.x}). A link using the other form, or a label the query aggregates away,
    resolves to an empty string and opens the wrong (unfiltered) dashboard."""
    for panel in _panels(_load(name)):
        exprs = [t["expr"] for t in panel["targets"]]
        kept = set().union(*(_by_labels(e) for e in exprs))
        for link in panel["fieldConfig"]["defaults"].get("links", []):
            fields = re.findall(r"\$\{__(field\.labels|data\.fields)\.(\w+)\}", link["url"])
            assert fields, (panel["title"], link["url"])
            for kind, label in fields:
                assert kind == ("data.fields" if panel["type"] == "table" else "field.labels"), (panel["title"], link)
                assert label in kept, f"{name}/{panel['title']}: link uses {label}, the query keeps only {kept}"


# A DLQ's `source` is the name of a queue: a variable of queue names may select DLQs by source.
QUEUE_NAMED = {"queue": {"source"}}


@pytest.mark.parametrize("name", NAMES)
def test_variables_filter_the_label_they_hold(name):
    """Each variable filters the label its values come from (the DLQ dashboard's `queue` holds
    source queues: filtering retry queues by `queue` with it matched nothing)."""
    doc = _load(name)
    holds = _variable_labels(doc)
    used = set()
    for panel in _panels(doc):
        for target in panel["targets"]:
            for metric, matchers in matchers_of(substitute(target["expr"], {**generate.ALL_SELECTED, **{
                    f"${v}": f"__var_{v}__" for v in holds}})):
                for label, value in matchers.items():
                    for var in re.findall(r"__var_(\w+)__", value):
                        used.add(var)
                        assert label in {holds[var]} | QUEUE_NAMED.get(holds[var], set()), (
                            f"{name}/{panel['title']}: ${var} (values of {holds[var]}) filters {label}")
                        assert label in allowed_labels()[metric], f"{name}/{panel['title']}: {metric} has no {label}"
    assert set(holds) - {"cluster"} <= used, f"{name}: variables no panel uses: {set(holds) - used}"


HEALTH_METRICS = {"mqwatch_up", "mqwatch_pulsar_broker_healthy", "up"}


@pytest.mark.parametrize("name", NAMES)
def test_health_tiles_turn_red_on_failure(name):
    for panel in _panels(_load(name)):
        reads = {m for t in panel["targets"] for m, _ in selectors(substitute(t["expr"]))}
        if panel["type"] != "stat" or not reads & HEALTH_METRICS:
            continue
        defaults = panel["fieldConfig"]["defaults"]
        steps = defaults["thresholds"]["steps"]
        assert steps[0]["color"] == "red" and steps[0]["value"] is None, panel["title"]
        assert [s["color"] for s in steps if s["value"] == 1] == ["green"], panel["title"]
        shown = {k: v for m in defaults["mappings"] for k, v in m["options"].items()}
        assert shown["0"]["color"] == "red" and shown["0"]["text"] != "Off", panel["title"]
        assert panel["options"]["colorMode"] == "background", panel["title"]


ALERT_OF_PANEL_METRIC = {"mqwatch_consumer_lag_seconds": "MqwatchConsumerLagHigh",
                         "mqwatch_delayed_overdue_seconds": "MqwatchDelayedQueueOverdue",
                         "mqwatch_pending_oldest_seconds": "MqwatchPendingTooOld",
                         "mqwatch_redis_queue_latency_seconds": "MqwatchJobQueueLatencyHigh"}


@pytest.mark.parametrize("name", NAMES)
def test_lag_panels_draw_the_alert_threshold_and_link_its_runbook(name):
    thresholds = generate.load_alert_config()["alerts"]
    checked = 0
    for panel in _panels(_load(name)):
        reads = {m for t in panel["targets"] for m, _ in selectors(substitute(t["expr"]))}
        alerts = {ALERT_OF_PANEL_METRIC[m] for m in reads if m in ALERT_OF_PANEL_METRIC}
        if panel["type"] != "timeseries" or len(alerts) != 1:
            continue
        alert, = alerts
        defaults = panel["fieldConfig"]["defaults"]
        assert [s["value"] for s in defaults["thresholds"]["steps"]] == [None, thresholds[alert]["threshold_seconds"]], (
            panel["title"])
        assert defaults["custom"]["thresholdsStyle"]["mode"] != "off", panel["title"]
        runbooks = [link["url"] for link in panel.get("links", [])]
        assert any(url.endswith(f"/{alert}.md") for url in runbooks), panel["title"]
        checked += 1
    if name != "dlq":
        assert checked, f"{name}: no lag panel checked"


def test_runbook_links_point_at_existing_runbooks():
    base = generate.RUNBOOKS
    for name in NAMES:
        for panel in _panels(_load(name)):
            for link in panel.get("links", []):
                assert link["url"].startswith(base + "/"), link
                runbook = link["url"][len(base) + 1:]
                assert (ROOT / "docs" / "runbooks" / runbook).exists(), link


@pytest.mark.parametrize("name", NAMES)
def test_sums_do_not_double_count_series_several_agents_report(name):
    for panel in _panels(_load(name)):
        for target in panel["targets"]:
            expr = target["expr"]
            for agg in re.findall(r"\b(sum|count) by \([^)]*\) \((.{0,40})", expr):
                if "ALERTS" in agg[1] or "mqwatch_build_info" in agg[1]:
                    continue  # one series per alert (Prometheus' own), one per agent (counting agents)
                assert agg[1].startswith("max without (instance, pod)"), f"{name}/{panel['title']}: {agg[0]} over {agg[1]}"


@pytest.mark.parametrize("name", NAMES)
def test_topk_in_a_time_series_ranks_once_over_the_range(name):
    # topk in a range query picks the top k at every step, showing many more than k series.
    for panel in _panels(_load(name)):
        for target in panel["targets"]:
            if "topk" in target["expr"] and panel["type"] == "timeseries":
                assert "@ end()" in target["expr"] and "$__range" in target["expr"], panel["title"]


def test_overview_has_the_on_call_panels():
    titles = {p["title"]: p for p in _panels(_load("overview"))}
    assert {"Firing mqwatch alerts", "Stalled or stopped consumers", "Worst dead-letter queues",
            "Worst consumers by lag (seconds)", "Agents scraped"} <= set(titles)
    for title in ("Worst consumers by lag (seconds)", "Worst dead-letter queues"):
        assert titles[title]["options"]["sortBy"] == [{"displayName": "Value", "desc": True}], title
    assert any("Job queue latency" == p["title"] for p in _panels(_load("redis")))
