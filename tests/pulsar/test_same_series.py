"""Both sources, one answer: the /metrics path on a real pulsar-lite broker and the admin
path on the FIXTURE server (admin_fixture.py, shapes from apache/pulsar) fed admin JSON
built from the very state that broker reports, must produce the same series."""

from __future__ import annotations

import re
import time

import pulsar

from tests.helpers import collect_once, make_check, unique
from tests.pulsar.admin_fixture import subscription_json, topic_stats_json
from tests.pulsar.workload import nack_into_dlq, produce, raw_samples, subscribe_and_leave, wait_metric

NS = "persistent://public/default/"


def admin_json_from_broker(metrics_url: str, topics: list[str], earliest_ms: dict) -> dict:
    """TopicStats JSON per topic, from the broker's /metrics read with prometheus-client alone."""
    docs = {}
    samples = raw_samples(metrics_url)
    for topic in topics:
        def topic_value(name, topic=topic):
            return next(s.value for s in samples if s.name == name and s.labels.get("topic") == topic)

        subs = {}
        for s in samples:
            sub = s.labels.get("subscription")
            if s.labels.get("topic") != topic or not sub or re.fullmatch(r"reader-[0-9a-f]{10}", sub):
                continue
            subs.setdefault(sub, {})[s.name] = s.value
        docs[NS + topic] = topic_stats_json(
            int(topic_value("pulsar_in_messages_total")), int(topic_value("pulsar_storage_size")),
            {name: dict(subscription_json(
                int(v["pulsar_subscription_back_log"]), unacked=int(v["pulsar_subscription_unacked_messages"]),
                consumers=int(v["pulsar_subscription_consumers_count"]),
                blocked=bool(v["pulsar_subscription_blocked_on_unacked_messages"]),
                earliest_publish_ms=earliest_ms.get((topic, name), 0) if v["pulsar_subscription_back_log"] else 0),
                msgOutCounter=int(v["pulsar_out_messages_total"]))
             for name, v in subs.items()},
        )
        for name, v in subs.items():  # pulsar-lite does not count TTL expiries: neither may the JSON
            if "pulsar_subscription_total_msg_expired" not in v:
                del docs[NS + topic]["subscriptions"][name]["totalMsgExpired"]
    return docs


def series(snap, skip=()):
    return {(name, tuple((k, v) for k, v in labels if k not in skip)): value
            for name, fam in snap.families.items() for labels, value in fam}


def test_metrics_and_admin_paths_produce_the_same_series(pulsar_lite, pulsar_client, admin_fixture):
    url = pulsar_lite.extra["metrics_url"]
    orders, payments = unique("same-orders"), unique("same-payments")
    subscribe_and_leave(pulsar_client, orders, "billing")
    nack_into_dlq(pulsar_client, payments, "worker", 2)
    dlq = f"{payments}-worker-DLQ"
    wait_metric(url, "pulsar_in_messages_total", 2, topic=dlq)
    wait_metric(url, "pulsar_subscription_back_log", 0, topic=orders, subscription="billing")

    metrics_cfg = {"kind": "pulsar", "name": "events", "metrics_url": url, "topics": {"include": ["/same-(orders|payments)-"]}}
    _, metrics_check = make_check(metrics_cfg)
    _, admin_check = make_check({**metrics_cfg, "metrics_url": [], "admin_url": admin_fixture.url})
    admin_fixture.set_cluster()
    # Both checks see the same history (the status window depends on it): before and after producing.
    admin_fixture.add_topics(admin_json_from_broker(url, [orders, payments, dlq], {}))
    first_seen = time.time()
    collect_once(metrics_check)
    collect_once(admin_check)
    produce(pulsar_client, orders, 3)
    reader = pulsar_client.create_reader(orders, pulsar.MessageId.earliest)
    earliest_ms = reader.read_next(timeout_millis=5000).publish_timestamp()
    reader.close()
    wait_metric(url, "pulsar_subscription_back_log", 3, topic=orders, subscription="billing")
    from_metrics = collect_once(metrics_check)
    second_seen = time.time()
    assert from_metrics.ok, from_metrics.error

    admin_fixture.add_topics(admin_json_from_broker(url, [orders, payments, dlq], {(orders, "billing"): earliest_ms}))
    from_admin = collect_once(admin_check)
    assert from_admin.ok, from_admin.error

    # The broker label is the address of whatever answered: the broker for /metrics, the
    # fixture (another process) for the admin API. Everything else must match exactly.
    a, b = series(from_metrics, skip=("broker",)), series(from_admin, skip=("broker",))
    lag_key = ("mqwatch_consumer_lag_seconds", tuple(sorted({"system": "pulsar", "cluster": "events",
                                                            "queue": NS + orders, "consumer": "billing"}.items())))
    assert set(a) == set(b)
    assert {k: v for k, v in a.items() if k != lag_key} == {k: v for k, v in b.items() if k != lag_key}
    assert a[("mqwatch_consumer_lag_messages", lag_key[1])] == 3
    assert a[("mqwatch_dlq_messages_total", tuple(sorted({"system": "pulsar", "cluster": "events", "dlq": NS + dlq,
                                                          "source": NS + payments, "consumer": "worker"}.items())))] == 2
    # Lag seconds: exact from the publish time (admin) vs. estimated from the msgIn history
    # (metrics); they agree within the estimator's error bound, the gap between observations.
    assert abs(a[lag_key] - b[lag_key]) <= (second_seen - first_seen) + 1.0
