"""Prometheus and Alertmanager for `mqwatch demo`: the shipped alert rules with demo-short
`for:` durations, the shipped Alertmanager routing, and every receiver replaced by the demo's
own webhook receiver, which prints each alert as it fires and resolves."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mqwatch.agent.embedded import Broker, start_alertmanager, start_prometheus
from mqwatch.agent.webhook import WebhookReceiver

log = logging.getLogger("mqwatch.demo")

# Alerts fire within about two minutes of the demo's start instead of after 5-10 minutes.
MAX_FOR = "10s"
# Thresholds the demo's story crosses quickly (the shipped ones are for production).
DEMO_THRESHOLDS = {"MqwatchDelayedQueueOverdue": {"threshold_seconds": 20},
                   # the demo's backlogs are tens of messages, not thousands
                   "MqwatchConsumerNotDraining": {"min_lag_messages": 50}}
SCRAPE_INTERVAL = "5s"

_MINIMAL_ROUTE = {"route": {"receiver": "demo", "group_by": ["system", "cluster"]}, "receivers": [{"name": "demo"}]}


def _alerts_package():
    """alerts/ (rules generator, Alertmanager example) where this install has it, else None."""
    try:
        from mqwatch.alerts import generate
    except ImportError:
        return None
    return generate


def demo_rules(runbook_base_url: str) -> str | None:
    generate = _alerts_package()
    if generate is None:
        return None
    config = generate.load_config({"runbook_base_url": runbook_base_url, "alerts": DEMO_THRESHOLDS})
    return generate.render_rules(config, max_for=MAX_FOR)


def demo_alertmanager_config(webhook_url: str) -> dict:
    """The shipped example's routes and inhibitions, with each receiver sent to the webhook
    and waits cut from minutes to seconds."""
    generate = _alerts_package()
    example = generate.ROOT / "alerts" / "alertmanager.example.yml" if generate else None
    config = yaml.safe_load(example.read_text()) if example and example.is_file() else dict(_MINIMAL_ROUTE)
    config["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": f"{webhook_url}/{r['name']}",
                                                                    "send_resolved": True}]}
                           for r in config["receivers"]]
    config["route"].update({"group_wait": "2s", "group_interval": "5s", "repeat_interval": "1h"})
    return config


def runbooks_dir() -> Path | None:
    generate = _alerts_package()
    if generate is None:
        return None
    # A clone keeps them in docs/runbooks; a wheel ships them as the mqwatch.runbooks package data.
    for path in (generate.ROOT / "docs" / "runbooks", generate.ROOT / "runbooks"):
        if path.is_dir():
            return path
    return None


@dataclass
class Alerting:
    prometheus: Broker
    alertmanager: Broker
    receiver: WebhookReceiver
    rules: bool
    urls: dict = field(default_factory=dict)

    def stop(self) -> None:
        for stop in (self.prometheus.stop, self.alertmanager.stop, self.receiver.close):
            try:
                stop()
            except Exception as e:  # stop the others whatever happens to one
                log.warning("demo_stop_failed error=%r", e)


def start_alerting(agent_address: str, say) -> Alerting:
    """Raises BrokerUnavailable when Prometheus or Alertmanager is not installed."""
    receiver = WebhookReceiver(say, runbooks_dir())
    try:
        alertmanager = start_alertmanager(yaml.safe_dump(demo_alertmanager_config(receiver.url), sort_keys=False))
    except Exception:
        receiver.close()
        raise
    rules = demo_rules(f"{receiver.url}/runbooks" if receiver.runbooks else "docs/runbooks")
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [{"job_name": "mqwatch", "static_configs": [{"targets": [agent_address]}]}],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]},
    }
    if rules:
        config["rule_files"] = ["mqwatch.rules.yml"]
    try:
        prometheus = start_prometheus(yaml.safe_dump(config, sort_keys=False), {"mqwatch.rules.yml": rules} if rules else None)
    except Exception:
        alertmanager.stop()
        receiver.close()
        raise
    return Alerting(prometheus, alertmanager, receiver, bool(rules), {
        "prometheus": prometheus.extra["url"] + "/alerts",
        "alertmanager": alertmanager.extra["url"],
        "webhook receiver": receiver.url + "/alerts",
    })
