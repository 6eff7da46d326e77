"""The metric catalog is the contract: docs match it, checks cannot emit outside it, plugins join it."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from mqwatch.agent.check import Check
from mqwatch.agent.metrics import CONTRACT_METRICS, GAUGE, MetricDef, catalog, render_markdown
from mqwatch.agent.registry import register, unregister
from mqwatch.agent.schema import Field, Int, Schema
from tests.helpers import collect_once

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_contract_metric_is_declared_by_a_shipped_check():
    # Alerts and dashboards may read only the catalog; a contract metric no check declares would
    # be a panel or an alert that never shows anything.
    declared = {e.metric.name: set(e.systems) for e in catalog()}
    for metric in CONTRACT_METRICS:
        assert declared.get(metric.name), f"{metric.name}: in the contract but no check declares it"


def test_docs_metrics_md_is_the_generated_catalog():
    with open(os.path.join(ROOT, "docs", "metrics.md")) as fh:
        assert fh.read() == render_markdown(catalog()), "regenerate: mqwatch metrics --format markdown > docs/metrics.md"


def test_metric_names_follow_prometheus_conventions():
    for entry in catalog():
        m = entry.metric
        assert re.fullmatch(r"mqwatch_[a-z][a-z0-9_]*[a-z0-9]", m.name), f"{m.name}: not a mqwatch_ snake_case name"
        assert m.help.endswith(".") and len(m.help) > 10, m.name
        assert not (set(m.labels) & {"system", "cluster"}), m.name
        if m.type == "counter":
            assert m.name.endswith("_total")
        for unit in ("_ms", "_milliseconds", "_minutes", "_kb", "_mb"):
            assert unit not in m.name, f"{m.name}: use base units"


class _ToyCheck(Check):
    kind = "toy"
    config_schema = Schema({"value": Field(Int(min=0), 1)})
    metrics = (MetricDef("mqwatch_toy_value", GAUGE, "A toy value for tests.", ("queue",)),)
    rogue = False

    def collect(self, out):
        out.add("mqwatch_toy_value", self.options.value, queue="q")
        if self.rogue:
            out.add("mqwatch_not_in_the_catalog", 1)


@pytest.fixture
def toy():
    register("toy", _ToyCheck)
    yield _ToyCheck
    unregister("toy")
    _ToyCheck.rogue = False


def test_registered_check_is_validated_collected_and_catalogued(toy):
    snap = collect_once({"kind": "toy", "name": "t", "value": 7})
    assert snap.ok and snap.value("mqwatch_toy_value", queue="q") == 7
    assert "mqwatch_toy_value" in {e.metric.name for e in catalog()}


def test_a_check_emitting_an_undeclared_metric_fails_loudly(toy):
    toy.rogue = True
    snap = collect_once({"kind": "toy", "name": "t"})
    assert not snap.ok
    assert snap.errors[-1][0] == "internal"
    assert "mqwatch_not_in_the_catalog" in snap.error


def test_third_party_check_plugs_in_through_the_entry_point_group(tmp_path):
    pkg = tmp_path / "mqwatch_toyplugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from mqwatch.agent.check import Check
        from mqwatch.agent.metrics import GAUGE, MetricDef
        from mqwatch.agent.schema import Field, Schema, Str

        class EchoCheck(Check):
            kind = "echo"
            config_schema = Schema({"queue": Field(Str())})
            metrics = (MetricDef("mqwatch_echo_messages", GAUGE, "Messages the echo plugin saw.", ("queue",)),)

            def collect(self, out):
                out.add("mqwatch_echo_messages", 42, queue=self.options.queue)
    """))
    dist = tmp_path / "mqwatch_toyplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mqwatch-toyplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[mqwatch.checks]\necho = mqwatch_toyplugin:EchoCheck\n")
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text("checks:\n  - kind: echo\n    name: e\n    queue: inbox\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT])}
    run = subprocess.run([sys.executable, "-m", "mqwatch.agent", "check", "-c", str(cfg), "--format", "prom"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert 'mqwatch_echo_messages{cluster="e",queue="inbox",system="echo"} 42.0' in run.stdout
    listed = subprocess.run([sys.executable, "-m", "mqwatch.agent", "metrics"], capture_output=True, text=True, env=env)
    assert "mqwatch_echo_messages" in listed.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("checks:\n  - kind: echo\n    name: e\n    queu: inbox\n")
    run = subprocess.run([sys.executable, "-m", "mqwatch.agent", "validate", "-c", str(bad)], capture_output=True, text=True, env=env)
    assert run.returncode == 2 and "checks[0].queu: unknown key (did you mean queue?)" in run.stderr


def test_collect_errors_start_at_zero_for_every_documented_reason(redis_server):
    """A fresh check exports mqwatch_collect_errors_total{reason} at 0 for each reason
    docs/metrics.md lists for it, so increase() over the first error is not lost."""
    from mqwatch.agent.exporter import Exporter
    from mqwatch.agent.metrics import CORE_ERROR_REASONS
    from mqwatch.agent.registry import get_check_class

    snap = collect_once({"kind": "redis", "name": "fresh", "url": f"redis://127.0.0.1:{redis_server.port}/9"})
    assert snap.ok and not snap.errors
    exporter = Exporter(process_metrics=False)
    exporter.publish(snap, "redis")
    text = exporter.body().decode()
    reasons = CORE_ERROR_REASONS + get_check_class("redis").error_reasons
    with open(os.path.join(ROOT, "docs", "metrics.md")) as fh:
        documented = fh.read().split("## Reasons of", 1)[1].split("| redis | ", 1)[1].split("\n", 1)[0]
    for reason in reasons:
        assert f"`{reason}`" in documented or reason in CORE_ERROR_REASONS
        assert f'mqwatch_collect_errors_total{{cluster="fresh",reason="{reason}",system="redis"}} 0.0' in text, reason
