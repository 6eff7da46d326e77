"""Benchmark 7 in `python -m benchmarks`: time to page, end to end, at default settings.

A real tansu and a real Redis, the agent at its default 15 s interval, a Prometheus scraping it
every 15 s and evaluating the shipped rules (alerts/mqwatch.rules.yml, unchanged) every 15 s, the
shipped Alertmanager example (its 30 s group_wait, receivers pointed at a webhook receiver).
Four events happen at once, and each is timed from the event to the webhook's receipt of the
firing alert:

- a Kafka consumer stops: it committed every second while a producer writes one record per second,
  then it commits no more (MqwatchConsumerStopped);
- a Kafka consumer stalls: a group member keeps polling (alive, in the group) but stops committing
  (MqwatchConsumerStalled);
- dead letters arrive in a Redis DLQ that already held some (MqwatchDLQReceivingMessages);
- the due time of an entry of a Redis delayed queue passes and no poller moves it
  (MqwatchDelayedQueueOverdue).

The floor, measured in the same run, is the DLQ alert: `for: 0s` and no status window, so its
time is one collection, one scrape, one evaluation and group_wait, which no rule can beat; the
other two are also shown as ratios to it. `--smoke` runs the same pipeline with 1 s intervals, --max-for-capped rules and
1 s waits, to prove that it works, not how fast.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import yaml

from benchmarks.report import Result, at_most, info

TITLE = "7. Time to page: event to Alertmanager receiver, default settings (tansu, Redis)"
TARGET_SECONDS = 180.0
ALERTS = {"stopped": "MqwatchConsumerStopped", "stalled": "MqwatchConsumerStalled",
          "dlq": "MqwatchDLQReceivingMessages", "overdue": "MqwatchDelayedQueueOverdue"}
# the object each alert is about (the label that names it, and its value)
ABOUT = {"stopped": ("consumer", "billing"), "stalled": ("consumer", "ledger"), "dlq": ("dlq", "jobs:email:dead"),
         "overdue": ("queue", "delay:order-timeouts")}
WHAT = {"stopped": "a Kafka consumer stops", "stalled": "a Kafka consumer stalls (stays in its group)",
        "dlq": "dead letters arrive in a Redis DLQ", "overdue": "a Redis delayed entry becomes due and stays"}


def _settings(smoke: bool) -> dict:
    if smoke:
        return {"agent": {"interval": "1s", "timeout": "3s"}, "scrape": "1s", "group_wait": "1s",
                "max_for": "2s", "overdue_threshold": 2}
    # Defaults: the agent's own interval (15 s), the README's scrape recommendation (15 s), the
    # shipped rules and the shipped Alertmanager example as they are.
    return {"agent": {}, "scrape": "15s", "group_wait": None, "max_for": None, "overdue_threshold": None}


def _rules(settings: dict) -> str:
    from mqwatch.alerts import generate

    overrides = {}
    if settings["overdue_threshold"] is not None:  # smoke: seconds, not minutes, of evidence
        overrides = {"alerts": {"MqwatchDelayedQueueOverdue": {"threshold_seconds": settings["overdue_threshold"]},
                                "MqwatchConsumerStopped": {"min_lag_seconds": settings["overdue_threshold"]},
                                "MqwatchConsumerStalled": {"min_lag_seconds": settings["overdue_threshold"]}}}
    return generate.render_rules(generate.load_config(overrides), max_for=settings["max_for"])


def _alertmanager_config(webhook_url: str, settings: dict) -> str:
    from tests.ops.stack import ALERTMANAGER_EXAMPLE

    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    config["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": f"{webhook_url}/{r['name']}"}]}
                           for r in config["receivers"]]
    if settings["group_wait"]:
        config["route"].update({"group_wait": settings["group_wait"], "group_interval": settings["group_wait"]})
    return yaml.safe_dump(config, sort_keys=False)


class _KafkaTraffic:
    """One record a second to `topic`; `group` (if any) commits the high watermark every second
    (an assign()-style committer, see shared/brokers.md) until stop_consumer()."""

    def __init__(self, bootstrap: str, topic: str, group: str | None):
        from confluent_kafka import Consumer, Producer, TopicPartition

        self.topic, self.group = topic, group
        self.producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1, "linger.ms": 0,
                                  "log_level": 2})  # quiet when the broker stops at the end
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group or "unused",
                                  "enable.auto.commit": False})
        self._tp = TopicPartition
        self.consuming = group is not None
        self.stopped_at: float | None = None
        self._done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._done.is_set():
            self.producer.produce(self.topic, value=b"order", partition=0)
            self.producer.flush(5)
            if self.consuming:
                _, high = self.consumer.get_watermark_offsets(self._tp(self.topic, 0), timeout=5)
                self.consumer.commit(offsets=[self._tp(self.topic, 0, high)], asynchronous=False)
            self._done.wait(1.0)

    def stop_consumer(self) -> float:
        self.consuming = False
        self.stopped_at = time.time()
        return self.stopped_at

    def close(self):
        self._done.set()
        self.thread.join(10)
        self.consumer.close()


class _StallingMember:
    """A real group member of `group` on `topic`: polls and commits what it consumed every second;
    after stall() it keeps polling (heartbeats: still a member) but commits nothing. Short session
    and poll timeouts, as shared/brokers.md advises for tansu."""

    def __init__(self, bootstrap: str, topic: str, group: str):
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
                                  "max.poll.interval.ms": 10000})
        self.consumer.subscribe([topic])
        self.committing = True
        self._done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        last_commit = 0.0
        while not self._done.is_set():
            self.consumer.poll(0.2)
            if self.committing and time.monotonic() - last_commit >= 1:
                try:
                    self.consumer.commit(asynchronous=False)
                except Exception:  # nothing consumed yet since the last commit (KafkaError _NO_OFFSET)
                    pass
                last_commit = time.monotonic()

    def stall(self) -> float:
        self.committing = False
        return time.time()

    def close(self):
        self._done.set()
        self.thread.join(10)
        self.consumer.close()


def run(smoke: bool = False) -> Result:
    import redis as redis_client

    from mqwatch.checks.kafka.embedded import start_tansu
    from mqwatch.checks.redis.embedded import start_redis
    from mqwatch.agent.embedded import start_alertmanager
    from tests.helpers import kafka_create_topics, wait_until
    from tests.ops.stack import AgentProcess, WebhookReceiver, prometheus_query, start_prometheus_for

    settings = _settings(smoke)
    tmp = Path(tempfile.mkdtemp(prefix="mqwatch-ttp-"))
    tansu, redis_server = start_tansu(), start_redis()
    webhook = WebhookReceiver()
    am = prometheus = agent = traffic = payments = member = None
    events: dict[str, float] = {}
    try:
        bootstrap = tansu.address
        kafka_create_topics(bootstrap, {"orders": 1, "payments": 1})
        r = redis_client.Redis(host="127.0.0.1", port=redis_server.port)
        dlq, delayed = "jobs:email:dead", "delay:order-timeouts"
        r.lpush(dlq, b'{"job": 1, "error": "SMTPError"}')
        traffic = _KafkaTraffic(bootstrap, "orders", "billing")
        payments = _KafkaTraffic(bootstrap, "payments", None)  # the member below consumes it
        member = _StallingMember(bootstrap, "payments", "ledger")
        config = tmp / "mqwatch.yaml"
        config.write_text(yaml.safe_dump({
            **({"agent": settings["agent"]} if settings["agent"] else {}),
            "checks": [{"kind": "kafka", "name": "shop", "bootstrap_servers": bootstrap},
                       {"kind": "redis", "name": "jobs", "url": f"redis://127.0.0.1:{redis_server.port}/0",
                        "keys": ["jobs:*", "delay:*"], "dlq_keys": ["*:dead"], "frameworks": []}],
        }))
        agent = AgentProcess(config)
        am = start_alertmanager(_alertmanager_config(webhook.url, settings))
        prometheus = start_prometheus_for([agent.address], _rules(settings), alertmanager=am.address,
                                          interval=settings["scrape"])
        url = prometheus.extra["url"]
        warmup = 20 if smoke else 120

        def ready():
            up = prometheus_query(url, "mqwatch_up == 1") or []
            ok = prometheus_query(url, 'mqwatch_consumer_status{consumer=~"billing|ledger",status="ok"} == 1') or []
            return len(up) == 2 and len(ok) == 2

        # Two checks collecting, the consumer evaluated ok, a few samples of each series.
        wait_until(ready, warmup, interval=1, message="both checks scraped and both consumers ok")
        time.sleep(3 if smoke else 45)
        # (the smoke run's 2 s `for:` lets MqwatchDLQNotDrained fire on the old dead letter: not timed)
        early = [a["labels"] for a in webhook.alerts() if a["labels"]["alertname"] in ALERTS.values()]
        assert not early, f"alerts before any event: {early}"

        due = time.time() + 2
        r.zadd(delayed, {b"order-1:cancel": due})
        events["stopped"] = traffic.stop_consumer()
        events["stalled"] = member.stall()
        for i in range(3):
            r.lpush(dlq, f'{{"job": {i + 2}, "error": "SMTPError"}}'.encode())
        events["dlq"] = time.time()
        events["overdue"] = due

        received: dict[str, float] = {}

        def all_paged():
            for key, alert in ALERTS.items():
                if key not in received:
                    label, value = ABOUT[key]
                    hits = [t for t, a in webhook.timed_alerts()
                            if a["labels"]["alertname"] == alert and a["labels"].get(label) == value]
                    if hits:
                        received[key] = min(hits)
            return len(received) == len(ALERTS)

        try:
            wait_until(all_paged, 60 if smoke else 480, interval=0.5, message="every alert at the receiver")
        except AssertionError:
            missing = sorted(set(ALERTS) - set(received))
            raise AssertionError(f"never paged: {missing}; received {[a['labels'] for a in webhook.alerts()]}; "
                                 f"agent log: {agent.log_path.read_text()[-2000:]}") from None
    finally:
        for thing in (traffic, payments, member):
            if thing:
                thing.close()
        for proc in (agent, prometheus, am):
            if proc:
                proc.stop()
        webhook.close()
        redis_server.stop()
        tansu.stop()

    res = Result("time_to_page", TITLE)
    for key in ALERTS:
        seconds = received[key] - events[key]
        if smoke:
            res.rows.append(info(f"{WHAT[key]} -> {ALERTS[key]} (smoke: 1 s intervals)", seconds, "s"))
        else:
            res.rows.append(at_most(f"{WHAT[key]} -> {ALERTS[key]} at the receiver", seconds, TARGET_SECONDS, "s"))
    if not smoke:
        floor = received["dlq"] - events["dlq"]
        for key in ("stopped", "stalled", "overdue"):
            res.rows.append(info(f"{ALERTS[key]} over the pipeline floor (the DLQ alert, for: 0s)",
                                 (received[key] - events[key]) / floor, "x"))
    res.details += [
        "Settings: agent interval " + (settings["agent"].get("interval") or "15s (default)")
        + f", Prometheus scrape and evaluation {settings['scrape']}, shipped rules"
        + (f" with for: capped at {settings['max_for']}" if settings["max_for"] else " (unchanged)")
        + ", shipped Alertmanager example"
        + (f" with group_wait {settings['group_wait']}" if settings["group_wait"] else " (group_wait 30s)") + ".",
        "",
        "The budget of each: the agent's detection (one collection; for a stopped consumer its status window), "
        "one scrape, one rule evaluation, the rule's `for:`, Alertmanager's group_wait.",
    ]
    return res
