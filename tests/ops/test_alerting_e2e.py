"""End to end: the shipped alert rules (with short `for:` from the generator's --max-for) in a
real Prometheus scraping a real agent on a real broker, the shipped Alertmanager example routing
them in a real Alertmanager, delivered to a webhook receiver standing in for the pager."""

from __future__ import annotations

import datetime
import time

import pytest
import yaml

from mqwatch.alerts import generate
from tests.helpers import unique, wait_until
from tests.ops.stack import (AgentProcess, WebhookReceiver, get_json, post_json, prometheus_available,
                             prometheus_query, start_alertmanager_for, start_prometheus_for)

pytestmark = pytest.mark.skipif(not prometheus_available(), reason="Debian prometheus/prometheus-alertmanager missing")


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def alertmanager(webhook):
    am = start_alertmanager_for(webhook.url)
    yield am
    am.stop()


@pytest.fixture
def fast_rules():
    return generate.render_rules(generate.load_config(), max_for="2s")


def _labels(alert):
    return {k: v for k, v in alert["labels"].items()}


def test_check_failing_then_agent_down_reach_the_pager_with_cluster_labels(tmp_path, fresh_tansu, alertmanager,
                                                                             webhook, fast_rules):
    cluster = unique("shop")
    config = tmp_path / "mqwatch.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"interval": "1s", "timeout": "2s"},
        "checks": [{"kind": "kafka", "name": cluster, "bootstrap_servers": fresh_tansu.address}],
    }))
    agent = AgentProcess(config)
    prometheus = start_prometheus_for([agent.address], fast_rules, alertmanager=alertmanager.address)
    try:
        wait_until(lambda: [r["value"][1] for r in prometheus_query(prometheus.extra["url"], f'mqwatch_up{{cluster="{cluster}"}}')
                            or []] == ["1"], 30, message="Prometheus scraped mqwatch_up 1")
        assert webhook.alerts() == []

        fresh_tansu.stop()  # the broker dies: the check fails, the agent keeps serving
        failing = wait_until(lambda: [a for a in webhook.alerts("pager")
                                      if a["labels"]["alertname"] == "MqwatchCheckFailing"], 60,
                             message="MqwatchCheckFailing delivered to the pager")
        labels = _labels(failing[0])
        assert labels | {"cluster": cluster} == labels
        assert {labels["system"], labels["severity"], labels["job"]} == {"kafka", "critical", "mqwatch"}
        assert cluster in failing[0]["annotations"]["description"]
        assert failing[0]["annotations"]["runbook_url"].endswith("docs/runbooks/MqwatchCheckFailing.md")

        agent.stop()  # now the agent itself is gone
        down = wait_until(lambda: [a for a in webhook.alerts("pager")
                                   if a["labels"]["alertname"] == "MqwatchTargetDown"], 60,
                          message="MqwatchTargetDown delivered to the pager")
        assert down[0]["labels"]["instance"] == agent.address
        # the early warnings of the same outage (before CheckFailing inhibits them), nothing else
        assert {a["labels"]["alertname"] for a in webhook.alerts("chat")} <= {"MqwatchCollectErrors", "MqwatchCheckStale"}
        assert {a["labels"]["cluster"] for a in webhook.alerts("chat")} <= {cluster}
        assert not webhook.alerts("default")
    finally:
        agent.stop()
        prometheus.stop()


def _alert(name, severity, **labels):
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": name}, "startsAt": now.isoformat(),
            "endsAt": (now + datetime.timedelta(minutes=5)).isoformat()}


def test_example_alertmanager_config_inhibits_consequences_and_keeps_the_causes(alertmanager, webhook):
    """Every inhibition of the shipped example, in a real Alertmanager: the cause is delivered, its
    consequences on the same system/cluster/queue/consumer are suppressed, the same alerts
    elsewhere are delivered."""
    api = f"{alertmanager.extra['url']}/api/v2/alerts"
    shop = dict(system="kafka", cluster="shop", job="mqwatch")
    events = dict(system="pulsar", cluster="events", job="mqwatch")
    jobs = dict(system="redis", cluster="jobs", job="mqwatch")
    sent = {
        # stalled explains the lag of the same consumer, not of another one
        "stalled": _alert("MqwatchConsumerStalled", "critical", queue="orders", consumer="billing", **shop),
        "lag-billing": _alert("MqwatchConsumerLagHigh", "warning", queue="orders", consumer="billing", **shop),
        "lag-other": _alert("MqwatchConsumerLagHigh", "warning", queue="orders", consumer="audit", **shop),
        # offline partitions of `payments`: its consumers and the cluster's canary
        "offline": _alert("MqwatchKafkaOfflinePartitions", "critical", queue="payments", **shop),
        "stopped-payments": _alert("MqwatchConsumerStopped", "warning", queue="payments", consumer="ledger", **shop),
        "canary-shop": _alert("MqwatchCanaryFailing", "critical", **shop),
        # an unhealthy Pulsar broker: the cluster's consumer and canary alerts
        "broker": _alert("MqwatchPulsarBrokerUnhealthy", "critical", broker="b1:8080", **events),
        "empty-notify": _alert("MqwatchConsumerGroupEmptyLagGrowing", "critical", queue="t", consumer="notify", **events),
        "canary-events": _alert("MqwatchCanarySlow", "warning", **events),
        # a failing check: the dead letters computed from its stale data
        "check": _alert("MqwatchCheckFailing", "critical", **jobs),
        "dlq-jobs": _alert("MqwatchDLQReceivingMessages", "warning", dlq="q:dead", source="q", **jobs),
        "stale-jobs": _alert("MqwatchCheckStale", "warning", **jobs),
        # the same alert at critical (an override) silences its warning copy
        "pending-critical": _alert("MqwatchPendingTooOld", "critical", queue="s", consumer="g", **dict(jobs, cluster="other")),
        "pending-warning": _alert("MqwatchPendingTooOld", "warning", queue="s", consumer="g", **dict(jobs, cluster="other")),
    }
    for key, alert in sent.items():
        alert["labels"]["case"] = key  # tells the copies apart; not in any `equal:` list
    post_json(api, list(sent.values()))
    suppressed = {"lag-billing", "stopped-payments", "canary-shop", "empty-notify", "canary-events", "dlq-jobs",
                  "stale-jobs", "pending-warning"}

    def states():
        return {a["labels"]["case"]: a["status"]["state"] for a in get_json(api)}

    wait_until(lambda: len(states()) == len(sent) and "unprocessed" not in states().values(), 20,
               message="Alertmanager processed every alert")
    assert {k for k, v in states().items() if v == "suppressed"} == suppressed, states()
    delivered = set(sent) - suppressed
    wait_until(lambda: {a["labels"]["case"] for a in webhook.alerts()} >= delivered, 20,
               message="the causes delivered")
    time.sleep(2.5)  # more than group_wait + group_interval: a suppressed alert would have been sent by now
    assert {a["labels"]["case"] for a in webhook.alerts()} == delivered


def test_growing_dlq_and_overdue_delayed_queue_reach_chat_and_pager(tmp_path, alertmanager, webhook, fast_rules):
    """Redis: dead letters arrive in `<queue>:dead` and a delayed queue's poller is gone, so its
    due entries are ten minutes late. Both alerts leave Prometheus, pass the example routing and
    arrive with the cluster, queue and DLQ labels an on-call engineer needs."""
    import redis

    from mqwatch.checks.redis.embedded import start_redis

    server = start_redis()
    r = redis.Redis(host="127.0.0.1", port=server.port)
    cluster = unique("jobs")
    dlq, delayed = "jobs:email:dead", "delay:order-timeouts"
    r.lpush(dlq, b'{"job": 1, "error": "SMTPError"}')
    now = time.time()
    r.zadd(delayed, {b"order-1:cancel": now - 600, b"order-2:cancel": now - 30, b"order-3:cancel": now + 3600})
    config = tmp_path / "mqwatch.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"interval": "1s", "timeout": "3s"},
        "checks": [{"kind": "redis", "name": cluster, "url": f"redis://127.0.0.1:{server.port}/0",
                    "keys": ["jobs:*", "delay:*"], "dlq_keys": ["*:dead"], "frameworks": []}],
    }))
    agent = AgentProcess(config)
    prometheus = start_prometheus_for([agent.address], fast_rules, alertmanager=alertmanager.address)
    try:
        wait_until(lambda: prometheus_query(prometheus.extra["url"], f'mqwatch_dlq_messages_total{{cluster="{cluster}"}}'),
                   30, message="the DLQ scraped")
        time.sleep(2)  # a few samples at the old level, so the growth is an increase, not a new series
        assert not [a for a in webhook.alerts() if a["labels"]["alertname"] == "MqwatchDLQReceivingMessages"]
        for i in range(3):
            r.lpush(dlq, f'{{"job": {i + 2}, "error": "SMTPError"}}'.encode())

        dead = wait_until(lambda: [a for a in webhook.alerts("chat")
                                   if a["labels"]["alertname"] == "MqwatchDLQReceivingMessages"], 60,
                          message="MqwatchDLQReceivingMessages delivered to chat")
        labels = dead[0]["labels"]
        assert (labels["cluster"], labels["system"], labels["dlq"], labels["source"], labels["severity"]) == (
            cluster, "redis", dlq, "jobs:email", "warning")
        assert f"dead-letter queue {dlq} of cluster {cluster}" in dead[0]["annotations"]["description"]

        overdue = wait_until(lambda: [a for a in webhook.alerts("pager")
                                      if a["labels"]["alertname"] == "MqwatchDelayedQueueOverdue"], 60,
                             message="MqwatchDelayedQueueOverdue delivered to the pager")
        labels = overdue[0]["labels"]
        assert (labels["cluster"], labels["queue"], labels["severity"]) == (cluster, delayed, "critical")
        assert overdue[0]["annotations"]["summary"].startswith(f"Delayed queue {delayed} is 10m")
        assert overdue[0]["annotations"]["runbook_url"].endswith("docs/runbooks/MqwatchDelayedQueueOverdue.md")
    finally:
        agent.stop()
        prometheus.stop()
        r.close()
        server.stop()


@pytest.fixture(scope="module")
def demo_parts():
    from mqwatch.agent.demo import start_parts, stop_parts

    parts = start_parts()
    yield parts
    stop_parts(parts)


@pytest.mark.timeout(150)
def test_alerts_on_the_demo_page_the_broken_consumers_and_spare_the_healthy_ones(tmp_path, demo_parts, fast_rules):
    """The shipped rules (short `for:`) on the demo's traffic: the stopped Kafka group and the
    abandoned Pulsar subscription page, dead letters are reported; the group that keeps up and
    the assign()-style group that commits without members do not page."""
    checks = [c for part in demo_parts for c in part.checks]
    config = tmp_path / "mqwatch.yaml"
    config.write_text(yaml.safe_dump({"agent": {"interval": "1s", "timeout": "5s"}, "checks": checks}))
    agent = AgentProcess(config)
    prometheus = start_prometheus_for([agent.address], fast_rules)
    kinds = {c["kind"] for c in checks}

    def firing():
        try:
            alerts = get_json(f"{prometheus.extra['url']}/api/v1/alerts")["data"]["alerts"]
        except OSError:
            return set()
        return {(a["labels"]["alertname"], a["labels"].get("system"), a["labels"].get("dlq") or
                 a["labels"].get("consumer")) for a in alerts if a["state"] == "firing"}

    required = {("MqwatchConsumerGroupEmptyLagGrowing", "kafka", "fraud-check")}
    if "redis" in kinds:
        required |= {("MqwatchDLQReceivingMessages", "redis", "jobs:inventory:dead")}
    if "pulsar" in kinds:
        required |= {("MqwatchConsumerGroupEmptyLagGrowing", "pulsar", "notifications"),
                     ("MqwatchDLQReceivingMessages", "pulsar", "persistent://public/default/deliveries-delivery-service-DLQ")}
    try:
        seen = {}

        def all_required():
            seen["firing"] = firing()
            return seen["firing"] if required <= seen["firing"] else None

        try:
            now_firing = wait_until(all_required, 60, interval=1, message="the required alerts")
        except AssertionError:
            raise AssertionError(f"missing {required - seen['firing']}; firing {seen['firing']}") from None
        spared = {("inventory", "kafka"), ("analytics", "kafka"), ("payment-service", "redis"), ("ledger", "redis")}
        wrongly = {a for a in now_firing if (a[2], a[1]) in spared and a[0].startswith("MqwatchConsumer")}
        assert not wrongly, wrongly
        assert not {a for a in now_firing if a[0] in {"MqwatchCheckFailing", "MqwatchTargetDown"}}, now_firing
    finally:
        agent.stop()
        prometheus.stop()
