"""The Grafana dashboards: committed JSON equals the generator's output, every panel query parses
and reads only catalog metrics with labels they have, and the overview links to every detail
dashboard. (That every query returns data is the job of the end-to-end test against Prometheus.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
import pytest

from dashboards import generate
from tests.ops.catalog import allowed_labels

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("overview", "kafka", "redis", "pulsar", "dlq")


def _load(name):
    return json.loads((ROOT / "dashboards" / f"{name}.json").read_text())


def _panels(doc):
    return [p for p in doc["panels"] if p["type"] != "row"]


substitute = generate.substitute


def selectors(expr: str):
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node.name, {m.name for m in node.matchers.matchers}))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_committed_dashboards_equal_generator_output():
    for name in NAMES:
        assert (ROOT / "dashboards" / f"{name}.json").read_text() == generate.render(name), (
            f"dashboards/{name}.json is stale: run `python -m dashboards.generate`")
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


def test_overview_links_to_every_detail_dashboard():
    doc = _load("overview")
    urls = [link["url"] for p in _panels(doc) for link in p["fieldConfig"]["defaults"].get("links", [])]
    targets = set()
    for url in urls:
        path = url.split("?")[0]
        if "${__field.labels.system}" in path:  # resolved per clicked series
            targets |= {path.replace("${__field.labels.system}", s) for s in generate.SYSTEMS}
        else:
            targets.add(path)
        assert "${__url_time_range}" in url and "var-cluster=${__field.labels.cluster}" in url, url
    assert {f"/d/{generate.UID[n]}" for n in ("kafka", "redis", "pulsar", "dlq")} <= targets
    existing = {f"/d/{_load(n)['uid']}" for n in NAMES}
    assert targets <= existing, targets - existing
