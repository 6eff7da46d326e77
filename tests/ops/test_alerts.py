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

from mqwatch.alerts import generate
from tests.ops.catalog import allowed_names

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "alerts" / "mqwatch.rules.yml"
UNIT_TESTS = ROOT / "alerts" / "tests" / "mqwatch.rules.test.yml"
ALERTMANAGER = ROOT / "alerts" / "alertmanager.example.yml"
PROMETHEUSRULE = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"

# Issues 7 and 18 name these situations; each must have an alert (names are ours).
REQUIRED_ALERTS = {
    "MqwatchTargetDown", "MqwatchTargetMissing", "MqwatchCheckFailing", "MqwatchCheckStale", "MqwatchCollectErrors",
    "MqwatchConsumerLagHigh", "MqwatchConsumerLagging", "MqwatchConsumerRewound", "MqwatchConsumerStalled",
    "MqwatchConsumerStopped", "MqwatchConsumerGroupEmptyLagGrowing", "MqwatchPendingTooOld",
    "MqwatchJobQueueLatencyHigh", "MqwatchDLQReceivingMessages", "MqwatchDLQNotDrained", "MqwatchRetryQueueGrowing",
    "MqwatchDelayedQueueOverdue", "MqwatchKafkaUnderReplicatedPartitions", "MqwatchKafkaOfflinePartitions",
    "MqwatchKafkaBrokersDown", "MqwatchKafkaNoController", "MqwatchCanaryFailing", "MqwatchCanarySlow",
    "MqwatchRedisMemoryNearLimit", "MqwatchRedisEvicting", "MqwatchRedisReplicationLinkDown",
    "MqwatchPulsarBrokerUnhealthy", "MqwatchPulsarSubscriptionBlocked",
} | {  # issue 14: flow
    "MqwatchConsumerNotDraining", "MqwatchPoisonMessage", "MqwatchReprocessingSpike", "MqwatchMessagesLost",
    "MqwatchRetentionHeadroomLow", "MqwatchCanaryMessagesLost", "MqwatchCanaryMessagesDuplicated",
}
# Shipped disabled: evictions are normal on a Redis used as a cache; enabled per cluster.
OPT_IN = {"MqwatchRedisEvicting"}
RUNBOOK_BASE = generate.load_config()["runbook_base_url"]
# Alerts about a consumer or a dead-letter queue: their runbook says how to find the message.
ABOUT_MESSAGES = re.compile(r"Mqwatch(Consumer|Pending|JobQueue|DLQ|Retry|Delayed).*")

promtool = shutil.which("promtool")
amtool = shutil.which("amtool")
needs_promtool = pytest.mark.skipif(promtool is None, reason="promtool (Debian prometheus) not installed")


def _rules(path=RULES):
    return [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def _run(*cmd, cwd=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=cwd)


def test_committed_rules_and_prometheusrule_equal_generator_output():
    config = generate.load_config()
    assert RULES.read_text() == generate.render_rules(config), "run `python -m mqwatch.alerts.generate`"
    assert PROMETHEUSRULE.read_text() == generate.render_prometheusrule(config), "run `python -m mqwatch.alerts.generate`"


def test_every_required_alert_exists_with_severity_texts_and_runbook():
    rules = _rules()
    names = {a.name for a in generate.ALERTS}
    assert REQUIRED_ALERTS <= names
    assert {r["alert"] for r in rules} == names - OPT_IN
    assert RUNBOOK_BASE.startswith("https://"), "runbook links must be absolute to be clickable in a page"
    for name in names:
        runbook = (ROOT / "docs" / "runbooks" / f"{name}.md").read_text()
        sections = ["## What it means", "## How to confirm", "## How to mitigate"]
        if ABOUT_MESSAGES.fullmatch(name):
            sections.append("## How to find the message")
        for section in sections:
            assert section in runbook, f"{name}.md lacks {section!r}"
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        ann = rule["annotations"]
        assert ann["summary"] and ann["description"], name
        assert ann["runbook_url"] == f"{RUNBOOK_BASE}/{name}.md", name


def test_runbook_base_url_is_configurable():
    config = generate.load_config({"runbook_base_url": "https://wiki.example.com/ops/mqwatch/"})
    urls = {r["annotations"]["runbook_url"] for g in generate.rule_groups(config) for r in g["rules"]}
    assert "https://wiki.example.com/ops/mqwatch/MqwatchConsumerStalled.md" in urls
    assert all(u.startswith("https://wiki.example.com/ops/mqwatch/Mqwatch") for u in urls)


def test_alert_texts_name_cluster_queue_and_consumer_where_the_series_has_them():
    for rule in _rules():
        text = rule["annotations"]["summary"] + rule["annotations"]["description"]
        expr = rule["expr"]
        if rule["alert"] not in {"MqwatchTargetDown", "MqwatchTargetMissing"}:
            assert "$labels.cluster" in text, rule["alert"]
        if "dlq_messages" not in expr and any(m in expr for m in ("consumer_lag", "consumer_status", "consumer_blocked")):
            assert "$labels.queue" in text and "$labels.consumer" in text, rule["alert"]
        if "dlq_messages" in expr:
            assert "$labels.dlq" in text and "$labels.source" in text and "$labels.consumer" in text, rule["alert"]


def test_optional_labels_are_only_printed_when_present():
    # A Kafka group's member count has no queue, a Kafka DLQ no consumer: a bare {{ $labels.x }}
    # would print "on  (shop)". Each optional label is printed inside {{ with $labels.x }}.
    for rule in _rules():
        for key in ("summary", "description"):
            text = rule["annotations"][key]
            for label in ("queue", "consumer", "dlq", "source"):
                bare = re.findall(r"\{\{\s*\$labels\." + label + r"\s*\}\}", text)
                assert not bare, f"{rule['alert']} {key} prints $labels.{label} even when it is empty: {text}"


def test_every_rule_aggregates_away_the_reporting_agent():
    # N sidecars watching one cluster send one alert: no rule may keep instance/pod, except
    # the ones about the scrape target itself.
    for rule in _rules():
        if rule["alert"] in {"MqwatchTargetDown", "MqwatchTargetMissing"}:
            continue
        assert "without (instance, pod" in rule["expr"], rule["alert"]


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


@needs_promtool
def test_promtool_check_rules_accepts_rules_and_prometheusrule(tmp_path):
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    spec = yaml.safe_load(PROMETHEUSRULE.read_text())["spec"]
    (tmp_path / "from-crd.yml").write_text(yaml.safe_dump(spec))
    result = _run(promtool, "check", "rules", str(tmp_path / "from-crd.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_cover_every_alert_firing_and_staying_silent_on_realistic_data():
    doc = yaml.safe_load(UNIT_TESTS.read_text())
    fires, silent = set(), set()
    assert doc["evaluation_interval"] == "30s"
    for case in doc["tests"]:
        assert case["interval"] == "30s", case["name"]
        for check in case["alert_rule_test"]:
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {r["alert"] for r in _rules()}
    assert names - fires == set(), "alerts never proven to fire"
    assert names - silent == set(), "alerts never proven to stay silent"
    # A failed collection leaves a stale series: the cases model it with `stale`, not `_`.
    stale_for = {check["alertname"] for case in doc["tests"]
                 if any("stale" in str(s["values"]) for s in case["input_series"])
                 for check in case["alert_rule_test"] if check.get("exp_alerts")}
    level = {r["alert"] for r in _rules() if "last_over_time" in r["expr"]}
    assert level - stale_for == set(), "gap-tolerant alerts never proven to fire through a stale gap"


@needs_promtool
def test_promtool_unit_tests_pass():
    result = _run(promtool, "test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def _promtool_test(tmp_path, rules_text, series, alertname, eval_time, exp_labels, exp_annotations=None):
    (tmp_path / "rules.yml").write_text(rules_text)
    test = {
        "rule_files": ["rules.yml"], "evaluation_interval": "30s",
        "tests": [{"interval": "30s", "input_series": series, "alert_rule_test": [
            {"eval_time": eval_time, "alertname": alertname,
             "exp_alerts": [{"exp_labels": exp_labels, "exp_annotations": exp_annotations}] if exp_labels else []}]}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = _run(promtool, "test", "rules", "test.yml", cwd=tmp_path)
    return result.returncode == 0, result.stdout + result.stderr


def _lag(seconds, cluster="shop", queue="orders", consumer="billing", samples=60):
    return {"series": f'mqwatch_consumer_lag_seconds{{system="kafka",cluster="{cluster}",queue="{queue}",'
                      f'consumer="{consumer}",job="mqwatch",instance="mqwatch-0:9325"}}',
            "values": f"{seconds}x{samples}"}


def _lag_alert(cluster, queue, consumer, shown, threshold, severity="warning", for_="10m"):
    return {"exp_labels": {"system": "kafka", "cluster": cluster, "queue": queue, "consumer": consumer,
                           "job": "mqwatch", "severity": severity},
            "exp_annotations": {
                "summary": f"Consumer {consumer} is {shown} behind on {queue} ({cluster})",
                "description": f"Consumer {consumer} on queue {queue} in kafka cluster {cluster} has not consumed a "
                               f"message that is {shown} old (threshold {threshold}s, for {for_}).",
                "runbook_url": f"{RUNBOOK_BASE}/MqwatchConsumerLagHigh.md"}}


@needs_promtool
def test_threshold_override_changes_when_an_alert_fires(tmp_path):
    # 100 s of lag is below the default 300 s: silent with the shipped rules...
    ok, out = _promtool_test(tmp_path, RULES.read_text(), [_lag(100)], "MqwatchConsumerLagHigh", "15m", None)
    assert ok, out
    # ...and fires once a team lowers the threshold in an overrides file, rules untouched.
    overrides = {"alerts": {"MqwatchConsumerLagHigh": {"threshold_seconds": 60, "severity": "critical"}}}
    rules = generate.render_rules(generate.load_config(overrides))
    exp = _lag_alert("shop", "orders", "billing", "1m 40s", 60, "critical")
    ok, out = _promtool_test(tmp_path, rules, [_lag(100)], "MqwatchConsumerLagHigh", "15m", exp["exp_labels"],
                             exp["exp_annotations"])
    assert ok, out


@needs_promtool
def test_disabled_alert_and_selector_override(tmp_path):
    overrides = {"selector": 'job="mqwatch"', "alerts": {"MqwatchKafkaOfflinePartitions": {"enabled": False}}}
    rules_text = generate.render_rules(generate.load_config(overrides))
    rules = yaml.safe_load(rules_text)["groups"]
    names = {r["alert"] for g in rules for r in g["rules"]}
    assert "MqwatchKafkaOfflinePartitions" not in names
    lag = next(r for g in rules for r in g["rules"] if r["alert"] == "MqwatchConsumerLagHigh")
    assert lag["expr"] == ('max without (instance, pod) (last_over_time(mqwatch_consumer_lag_seconds{job="mqwatch"}[2m]))'
                           " > 300")
    (tmp_path / "r.yml").write_text(rules_text)
    assert _run(promtool, "check", "rules", str(tmp_path / "r.yml")).returncode == 0


@needs_promtool
def test_redis_evictions_alert_only_where_enabled(tmp_path):
    """Opt-in: a Redis used as a cache evicts by design; the queue Redis is named in an override."""
    def evicted(cluster):
        return {"series": f'mqwatch_redis_evicted_keys_total{{system="redis",cluster="{cluster}",job="mqwatch",'
                          'instance="mqwatch-0:9325"}', "values": "0x4 10+10x20"}

    series = [evicted("cache"), evicted("jobs")]
    assert "MqwatchRedisEvicting" not in RULES.read_text()
    rules = generate.render_rules(generate.load_config(
        {"cluster_overrides": {"jobs": {"MqwatchRedisEvicting": {"enabled": True}}}}))
    desc = ("Redis cluster jobs evicted {v} keys in the last 10m: queue and job keys may be among them, which "
            "loses messages.")
    ok, out = _promtool_test(tmp_path, rules, series, "MqwatchRedisEvicting", "8m",
                             {"system": "redis", "cluster": "jobs", "job": "mqwatch", "severity": "warning"},
                             {"summary": "Redis jobs is evicting keys", "description": desc.format(v="120"),
                              "runbook_url": f"{RUNBOOK_BASE}/MqwatchRedisEvicting.md"})
    assert ok, out


@needs_promtool
def test_max_for_makes_short_interval_rules_for_the_demo_and_end_to_end_tests(tmp_path):
    rules = generate.render_rules(generate.load_config(), max_for="15s")
    exp = _lag_alert("shop", "orders", "billing", "6m 40s", 300, for_="15s")
    # with the shipped 10m `for`, 1 minute is far too early; with --max-for 15s it fires.
    ok, out = _promtool_test(tmp_path, RULES.read_text(), [_lag(400)], "MqwatchConsumerLagHigh", "1m", None)
    assert ok, out
    ok, out = _promtool_test(tmp_path, rules, [_lag(400)], "MqwatchConsumerLagHigh", "1m", exp["exp_labels"],
                             exp["exp_annotations"])
    assert ok, out
    for rule in (r for g in yaml.safe_load(rules)["groups"] for r in g["rules"]):
        # "has not kept up for 30m" keeps its 30m: capped, it would report every healthy consumer
        # whose lag grew between two commits
        assert generate.seconds(rule.get("for", "0s")) <= 15 or rule["alert"] == "MqwatchConsumerLagging", rule["alert"]
        assert generate.seconds(rule.get("keep_firing_for", "0s")) <= 15, rule["alert"]
    lagging, = (r for g in yaml.safe_load(rules)["groups"] for r in g["rules"] if r["alert"] == "MqwatchConsumerLagging")
    assert lagging["for"] == "30m"


def test_generator_cli_rejects_unknown_overrides_clearly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("alerts:\n  MqwatchConsumerLagHgh: {threshold_seconds: 1}\n")
    python = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else "python3"
    result = _run(python, "-m", "mqwatch.alerts.generate", "--overrides", str(bad), "--rules-out", str(tmp_path / "out.yml"),
                  cwd=ROOT)
    assert result.returncode == 2
    assert "unknown alert 'MqwatchConsumerLagHgh'" in result.stderr
    assert not (tmp_path / "out.yml").exists()
    bad.write_text("alerts:\n  MqwatchConsumerLagHigh: {threshold_second: 1}\n")
    result = _run(python, "-m", "mqwatch.alerts.generate", "--overrides", str(bad), "--rules-out", str(tmp_path / "out.yml"),
                  cwd=ROOT)
    assert result.returncode == 2 and "alerts.MqwatchConsumerLagHigh: unknown keys ['threshold_second']" in result.stderr
    bad.write_text("consumer_overrides:\n  billing:\n    MqwatchKafkaOfflinePartitions: {for: 1m}\n")
    result = _run(python, "-m", "mqwatch.alerts.generate", "--overrides", str(bad), "--rules-out", str(tmp_path / "out.yml"),
                  cwd=ROOT)
    assert result.returncode == 2
    assert "consumer_overrides.billing.MqwatchKafkaOfflinePartitions: this alert cannot be set per consumer" in result.stderr


@pytest.mark.skipif(amtool is None, reason="amtool (Debian prometheus-alertmanager) not installed")
def test_alertmanager_example_is_valid_routes_by_severity_and_repages_every_12h():
    result = _run(amtool, "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    for labels, receiver in ((["severity=critical", "cluster=shop"], "pager"),
                             (["severity=warning", "cluster=shop"], "chat"),
                             (["severity=info"], "default")):
        result = _run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
        assert result.stdout.strip() == receiver, (labels, result.stdout, result.stderr)
    config = yaml.safe_load(ALERTMANAGER.read_text())
    assert {"cluster"} <= set(config["route"]["group_by"])
    assert config["route"]["repeat_interval"] == "12h"
    assert all("repeat_interval" not in r for r in config["route"]["routes"])
    # every alert name an inhibition mentions exists (a typo would silently inhibit nothing)
    names = {a.name for a in generate.ALERTS}
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            if matcher.startswith("alertname"):
                pattern = matcher.split("=", 1)[1].lstrip("~").strip('"')
                assert any(re.fullmatch(pattern, n) for n in names), matcher


@needs_promtool
def test_overrides_per_cluster_queue_and_consumer_apply_to_their_series_only_and_never_duplicate(tmp_path):
    overrides = {"cluster_overrides": {"payments": {"MqwatchConsumerLagHigh": {"threshold_seconds": 60}},
                                       "lab.1": {"MqwatchConsumerLagHigh": {"enabled": False}}},
                 "queue_overrides": {"nightly-export": {"MqwatchConsumerLagHigh": {"threshold_seconds": 7200}}},
                 "consumer_overrides": {"fraud-check": {"MqwatchConsumerLagHigh": {"threshold_seconds": 30}}}}
    rules = generate.render_rules(generate.load_config(overrides))
    (tmp_path / "rules.yml").write_text(rules)
    assert _run(promtool, "check", "rules", str(tmp_path / "rules.yml")).returncode == 0
    series = [_lag(100, "payments"), _lag(100, "shop"), _lag(400, "shop-2"), _lag(4000, "lab.1"), _lag(400, "lab-1"),
              _lag(3600, "shop", "nightly-export", "exporter"),         # its queue tolerates 2 h
              _lag(100, "payments", "nightly-export", "exporter"),      # the queue's value wins over the cluster's
              _lag(45, "shop", "nightly-export", "fraud-check")]        # the consumer's wins over the queue's
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "30s", "tests": [{
        "interval": "30s", "input_series": series,
        "alert_rule_test": [{"eval_time": "15m", "alertname": "MqwatchConsumerLagHigh", "exp_alerts": [
            # payments fires at its own 60 s; shop at 100 s stays silent; lab.1 is disabled, and its
            # dot is escaped so that lab-1 is still covered by the shared rule.
            _lag_alert("payments", "orders", "billing", "1m 40s", 60),
            _lag_alert("shop-2", "orders", "billing", "6m 40s", 300),
            _lag_alert("lab-1", "orders", "billing", "6m 40s", 300),
            _lag_alert("shop", "nightly-export", "fraud-check", "45s", 30)]}]}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = _run(promtool, "test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cluster_override_of_an_alert_without_cluster_label_is_rejected():
    with pytest.raises(ValueError, match="MqwatchTargetDown: this alert has no cluster label"):
        generate.load_config({"cluster_overrides": {"shop": {"MqwatchTargetDown": {"for": "1m"}}}})
    with pytest.raises(ValueError, match=r"cluster_overrides.shop: unknown alert 'MqwatchLag'"):
        generate.load_config({"cluster_overrides": {"shop": {"MqwatchLag": {"for": "1m"}}}})


@needs_promtool
def test_a_paused_job_queue_does_not_page_as_slow(tmp_path):
    """BullMQ `pause()` keeps jobs waiting on purpose: only the running queue's latency pages."""
    def series(name, queue, values):
        return {"series": f'{name}{{system="redis",cluster="jobs",framework="bullmq",queue="{queue}",job="mqwatch",'
                          'instance="mqwatch-0:9325"}', "values": values}

    inputs = [series("mqwatch_redis_queue_latency_seconds", "held", "600x40"),
              series("mqwatch_redis_queue_paused", "held", "1x40"),
              series("mqwatch_redis_queue_latency_seconds", "emails", "600x40"),
              series("mqwatch_redis_queue_paused", "emails", "0x40")]
    ok, out = _promtool_test(
        tmp_path, RULES.read_text(), inputs, "MqwatchJobQueueLatencyHigh", "15m",
        {"system": "redis", "cluster": "jobs", "framework": "bullmq", "queue": "emails", "job": "mqwatch",
         "severity": "warning"},
        {"summary": "Jobs wait 10m 0s on emails (jobs)",
         "description": "The oldest job waiting on emails in Redis cluster jobs was enqueued 10m 0s ago (threshold "
                        "300s, for 5m): its workers are too few, stuck or gone.",
         "runbook_url": f"{RUNBOOK_BASE}/MqwatchJobQueueLatencyHigh.md"})
    assert ok, out
