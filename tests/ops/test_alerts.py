"""The alert rules: valid for Prometheus, every alert proven by promtool unit tests, generated
from alerts/thresholds.yaml, overridable without editing them, and routed by Alertmanager."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import promql_parser
import pytest
import yaml

from alerts import generate
from tests.ops.catalog import PENDING_CHECK_METRICS, allowed_names, catalog_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "mqwatch.rules.yml"
UNIT_TESTS = ROOT / "alerts" / "tests" / "mqwatch.rules.test.yml"
ALERTMANAGER = ROOT / "alerts" / "alertmanager.example.yml"
PROMETHEUSRULE = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"

# Issue 7 names these situations; each must have an alert (names are ours).
REQUIRED_ALERTS = {
    "MqwatchTargetDown", "MqwatchCheckFailing", "MqwatchConsumerLagHigh", "MqwatchConsumerStalled",
    "MqwatchConsumerStopped", "MqwatchDLQReceivingMessages", "MqwatchDLQNotDrained",
    "MqwatchDelayedQueueOverdue", "MqwatchPendingTooOld", "MqwatchConsumerGroupEmptyLagGrowing",
    "MqwatchKafkaUnderReplicatedPartitions", "MqwatchKafkaOfflinePartitions", "MqwatchCanaryFailing",
    "MqwatchCanarySlow", "MqwatchRedisMemoryNearLimit", "MqwatchRedisEvicting",
    "MqwatchRedisReplicationLinkDown", "MqwatchPulsarBrokerUnhealthy", "MqwatchPulsarSubscriptionBlocked",
}

promtool = shutil.which("promtool")
amtool = shutil.which("amtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="promtool (Debian prometheus) not installed")


def _rules(path=RULES):
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def _run(*cmd, cwd=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_committed_rules_and_prometheusrule_equal_generator_output():
    config = generate.load_config()
    assert RULES.read_text() == generate.render_rules(config), "run `python -m alerts.generate`"
    assert PROMETHEUSRULE.read_text() == generate.render_prometheusrule(config), "run `python -m alerts.generate`"


def test_every_required_alert_exists_with_severity_texts_and_runbook():
    rules = _rules()
    assert {r["alert"] for r in rules} == REQUIRED_ALERTS
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], name
        assert ann["runbook_url"].endswith(f"docs/runbooks/{name}.md"), name
        runbook = (ROOT / "docs" / "runbooks" / f"{name}.md").read_text()
        for section in ("## What it means", "## How to confirm", "## What to do"):
            assert section in runbook, f"{name}.md lacks {section!r}"


def test_alert_texts_name_cluster_queue_and_consumer_where_the_series_has_them():
    for rule in _rules():
        text = rule["annotations"]["summary"] + rule["annotations"]["description"]
        expr = rule["expr"]
        if rule["alert"] != "MqwatchTargetDown":
            assert "$labels.cluster" in text, rule["alert"]
        if any(m in expr for m in ("consumer_lag", "consumer_status", "consumer_blocked")):
            assert "$labels.queue" in text and "$labels.consumer" in text, rule["alert"]
        if "dlq_messages" in expr:
            assert "$labels.dlq" in text and "$labels.source" in text and "$labels.consumer" in text, rule["alert"]


def test_rules_read_only_metrics_in_the_catalog():
    allowed = allowed_names() | {"up"}
    for rule in _rules():
        names = set()

        def visit(node, names=names):
            if isinstance(node, promql_parser.VectorSelector) and node.name:
                names.add(node.name)

        promql_parser.walk(promql_parser.parse(rule["expr"]), visit)
        assert names, rule["alert"]
        assert names <= allowed, f"{rule['alert']} reads unknown metrics {names - allowed}"


def test_pending_check_metric_names_are_removed_once_a_check_declares_them():
    assert not (set(PENDING_CHECK_METRICS) & catalog_names()), "now in the catalog: drop from PENDING_CHECK_METRICS"


@needs_promtool
def test_promtool_check_rules_accepts_rules_and_prometheusrule(tmp_path):
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    spec = yaml.safe_load(PROMETHEUSRULE.read_text())["spec"]
    (tmp_path / "from-crd.yml").write_text(yaml.safe_dump(spec))
    result = _run(promtool, "check", "rules", str(tmp_path / "from-crd.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_cover_every_alert_firing_and_staying_silent():
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    fires, silent = set(), set()
    for case in doc["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {r["alert"] for r in _rules()}
    assert names - fires == set(), "alerts never proven to fire"
    assert names - silent == set(), "alerts never proven to stay silent"


@needs_promtool
def test_promtool_unit_tests_pass():
    result = _run(promtool, "test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def _promtool_test(tmp_path, rules_text, series, alertname, eval_time, exp_labels, exp_annotations=None):
    (tmp_path / "rules.yml").write_text(rules_text)
    test = {
        "rule_files": ["rules.yml"], "evaluation_interval": "15s",
        "tests": [{"interval": "15s", "input_series": series, "alert_rule_test": [
            {"eval_time": eval_time, "alertname": alertname,
             "exp_alerts": [{"exp_labels": exp_labels, "exp_annotations": exp_annotations}] if exp_labels else []}]}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = _run(promtool, "test", "rules", "test.yml", cwd=tmp_path)
    return result.returncode == 0, result.stdout + result.stderr


LAG_100S = [{"series": 'mqwatch_consumer_lag_seconds{system="kafka",cluster="shop",queue="orders",consumer="billing"}',
             "values": "100x80"}]


@needs_promtool
def test_threshold_override_changes_when_an_alert_fires(tmp_path):
    # 100 s of lag is below the default 300 s: silent with the shipped rules...
    ok, out = _promtool_test(tmp_path, RULES.read_text(), LAG_100S, "MqwatchConsumerLagHigh", "15m", None)
    assert ok, out
    # ...and fires once a team lowers the threshold in an overrides file, rules untouched.
    overrides = {"alerts": {"MqwatchConsumerLagHigh": {"threshold_seconds": 60, "severity": "critical"}}}
    rules = generate.render_rules(generate.load_config(overrides))
    exp = {"system": "kafka", "cluster": "shop", "queue": "orders", "consumer": "billing", "severity": "critical"}
    ok, out = _promtool_test(tmp_path, rules, LAG_100S, "MqwatchConsumerLagHigh", "15m", exp, {
        "summary": "Consumer billing is 1m 40s behind on orders (shop)",
        "description": "Consumer billing on queue orders in kafka cluster shop has not consumed a message that is "
                       "1m 40s old (threshold 60s, for 10m).",
        "runbook_url": "docs/runbooks/MqwatchConsumerLagHigh.md",
    })
    assert ok, out


@needs_promtool
def test_disabled_alert_and_selector_override(tmp_path):
    overrides = {"selector": 'job="mqwatch"', "alerts": {"MqwatchKafkaOfflinePartitions": {"enabled": False}}}
    rules_text = generate.render_rules(generate.load_config(overrides))
    rules = yaml.safe_load(rules_text)["groups"]
    names = {r["alert"] for g in rules for r in g["rules"]}
    assert "MqwatchKafkaOfflinePartitions" not in names
    lag = next(r for g in rules for r in g["rules"] if r["alert"] == "MqwatchConsumerLagHigh")
    assert lag["expr"] == 'mqwatch_consumer_lag_seconds{job="mqwatch"} > 300'
    (tmp_path / "r.yml").write_text(rules_text)
    assert _run(promtool, "check", "rules", str(tmp_path / "r.yml")).returncode == 0


@needs_promtool
def test_max_for_makes_short_interval_rules_for_end_to_end_tests(tmp_path):
    rules = generate.render_rules(generate.load_config(), max_for="15s")
    overdue = [{"series": 'mqwatch_delayed_overdue_seconds{system="redis",cluster="cache",queue="delay:timeouts"}',
                "values": "300x10"}]
    # with the shipped 5m `for`, 45 s is far too early; with --max-for 15s it fires.
    ok, out = _promtool_test(tmp_path, RULES.read_text(), overdue, "MqwatchDelayedQueueOverdue", "45s", None)
    assert ok, out
    ok, out = _promtool_test(tmp_path, rules, overdue, "MqwatchDelayedQueueOverdue", "45s",
                             {"system": "redis", "cluster": "cache", "queue": "delay:timeouts", "severity": "critical"}, {
        "summary": "Delayed queue delay:timeouts is 5m 0s overdue (cache)",
        "description": "Delayed queue delay:timeouts in cluster cache holds work whose due time passed 5m 0s ago "
                       "(threshold 120s): the poller that moves due work is probably dead.",
        "runbook_url": "docs/runbooks/MqwatchDelayedQueueOverdue.md",
    })
    assert ok, out
    assert all(generate.seconds(r.get("for", "0s")) <= 15 for g in yaml.safe_load(rules)["groups"] for r in g["rules"])


def test_generator_cli_rejects_unknown_overrides_clearly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("alerts:\n  MqwatchConsumerLagHgh: {threshold_seconds: 1}\n")
    result = _run(str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else "python3",
                  "-m", "alerts.generate", "--overrides", str(bad), "--rules-out", str(tmp_path / "out.yml"), cwd=ROOT)
    assert result.returncode == 2
    assert "unknown alert 'MqwatchConsumerLagHgh'" in result.stderr
    assert not (tmp_path / "out.yml").exists()
    bad.write_text("alerts:\n  MqwatchConsumerLagHigh: {threshold_second: 1}\n")
    result = _run(str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else "python3",
                  "-m", "alerts.generate", "--overrides", str(bad), "--rules-out", str(tmp_path / "out.yml"), cwd=ROOT)
    assert result.returncode == 2 and "alerts.MqwatchConsumerLagHigh: unknown keys ['threshold_second']" in result.stderr


@pytest.mark.skipif(amtool is None, reason="amtool (Debian prometheus-alertmanager) not installed")
def test_alertmanager_example_is_valid_and_routes_by_severity():
    result = _run(amtool, "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    for labels, receiver in ((["severity=critical", "cluster=shop"], "pager"),
                             (["severity=warning", "cluster=shop"], "chat"),
                             (["severity=info"], "default")):
        result = _run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
        assert result.stdout.strip() == receiver, (labels, result.stdout, result.stderr)
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert {"cluster"} <= set(config["route"]["group_by"])
    inhibited_by_down = [r for r in config["inhibit_rules"] if 'alertname="MqwatchTargetDown"' in r["source_matchers"]]
    pattern = inhibited_by_down[0]["target_matchers"][0].split("=~", 1)[1].strip('"')
    for name in ("MqwatchConsumerLagHigh", "MqwatchConsumerStopped", "MqwatchDLQReceivingMessages"):
        assert re.fullmatch(pattern, name), name
    assert not re.fullmatch(pattern, "MqwatchTargetDown")


@needs_promtool
def test_cluster_override_applies_to_that_cluster_only_and_never_duplicates(tmp_path):
    overrides = {"cluster_overrides": {"payments": {"MqwatchConsumerLagHigh": {"threshold_seconds": 60}},
                                       "lab.1": {"MqwatchConsumerLagHigh": {"enabled": False}}}}
    rules = generate.render_rules(generate.load_config(overrides))
    (tmp_path / "rules.yml").write_text(rules)
    assert _run(promtool, "check", "rules", str(tmp_path / "rules.yml")).returncode == 0

    def lag(cluster, seconds):
        return {"series": f'mqwatch_consumer_lag_seconds{{system="kafka",cluster="{cluster}",queue="q",consumer="c"}}',
                "values": f"{seconds}x80"}

    series = [lag("payments", 100), lag("shop", 100), lag("shop-2", 400), lag("lab.1", 4000), lag("lab-1", 400)]
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [{"eval_time": "15m", "alertname": "MqwatchConsumerLagHigh", "exp_alerts": [
            {"exp_labels": {"system": "kafka", "cluster": c, "queue": "q", "consumer": "c", "severity": "warning"},
             "exp_annotations": {
                 "summary": f"Consumer c is {d} behind on q ({c})",
                 "description": f"Consumer c on queue q in kafka cluster {c} has not consumed a message that is "
                                f"{d} old (threshold {t}s, for 10m).",
                 "runbook_url": "docs/runbooks/MqwatchConsumerLagHigh.md"}}
            # payments fires at its own 60 s; shop at 100 s stays silent; lab.1 is disabled, and its
            # dot is escaped so that lab-1 is still covered by the shared rule.
            for c, d, t in (("payments", "1m 40s", 60), ("shop-2", "6m 40s", 300), ("lab-1", "6m 40s", 300))]}]}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = _run(promtool, "test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cluster_override_of_an_alert_without_cluster_label_is_rejected():
    with pytest.raises(ValueError, match="MqwatchTargetDown: this alert has no cluster label"):
        generate.load_config({"cluster_overrides": {"shop": {"MqwatchTargetDown": {"for": "1m"}}}})
    with pytest.raises(ValueError, match=r"cluster_overrides.shop: unknown alert 'MqwatchLag'"):
        generate.load_config({"cluster_overrides": {"shop": {"MqwatchLag": {"for": "1m"}}}})
