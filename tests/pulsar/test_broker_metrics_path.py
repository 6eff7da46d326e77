"""The /metrics path against a real pulsar-lite broker: backlog, lag seconds, a DLQ fed by
real nacks, a partitioned topic, broker health, the canary.

pulsar-lite refreshes its per-topic figures on a ~5 s tick, so each scenario waits until
the broker's own /metrics shows the state before mqwatch collects it.
"""

from __future__ import annotations

import time

import pytest

from tests.helpers import collect_once, make_check, unique, wait_until
from tests.pulsar.workload import metric_sum, nack_into_dlq, produce, raw_samples, subscribe_and_leave, wait_metric

NS = "persistent://public/default/"


def pulsar_check(broker, **extra) -> dict:
    return {"kind": "pulsar", "name": "events", "metrics_url": broker.extra["metrics_url"], **extra}


@pytest.fixture(scope="module")
def scenario(pulsar_lite, pulsar_client):
    """orders: subscription `billing` with 5 messages waiting, nobody consuming.
    payments: `worker` nacked 3 messages twice, so the client sent them to payments-worker-DLQ."""
    url = pulsar_lite.extra["metrics_url"]
    orders, payments = unique("orders"), unique("payments")
    subscribe_and_leave(pulsar_client, orders, "billing")
    first_produce = time.time()
    produce(pulsar_client, orders, 5)
    nack_into_dlq(pulsar_client, payments, "worker", 3)
    wait_metric(url, "pulsar_subscription_back_log", 5, topic=orders, subscription="billing")
    wait_metric(url, "pulsar_in_messages_total", 3, topic=f"{payments}-worker-DLQ")
    return {"orders": NS + orders, "payments": NS + payments, "dlq": f"{NS}{payments}-worker-DLQ",
            "first_produce": first_produce}


def test_subscription_backlog_is_lag_with_full_topic_name(pulsar_lite, scenario):
    snap = collect_once(pulsar_check(pulsar_lite))
    assert snap.ok, snap.error
    q = scenario["orders"]
    assert snap.value("mqwatch_consumer_lag_messages", queue=q, consumer="billing") == 5
    assert snap.value("mqwatch_queue_messages", queue=q) == 5
    assert snap.value("mqwatch_queue_produced_total", queue=q) == 5
    assert snap.value("mqwatch_queue_bytes", queue=q) > 0
    assert snap.value("mqwatch_consumer_members", queue=q, consumer="billing") == 0
    assert snap.value("mqwatch_pending_messages", queue=q, consumer="billing") == 0
    assert snap.value("mqwatch_consumer_blocked", queue=q, consumer="billing") == 0
    # Nobody consumes and 5 messages wait: stopped from the first observation.
    assert snap.value("mqwatch_consumer_status", queue=q, consumer="billing", status="stopped") == 1
    assert snap.value("mqwatch_pulsar_broker_healthy", broker=f"127.0.0.1:{pulsar_lite.extra['metrics_port']}") == 1
    assert all(not lbl["queue"].startswith(("orders", "payments")) for lbl, _ in snap.samples("mqwatch_queue_messages"))


def test_lag_seconds_estimated_from_msgin_history(pulsar_lite, pulsar_client):
    """No admin API: lag seconds come from the shared estimator over the msgIn counter."""
    url = pulsar_lite.extra["metrics_url"]
    topic = unique("clicks")
    subscribe_and_leave(pulsar_client, topic, "analytics")
    _, check = make_check(pulsar_check(pulsar_lite))
    wait_metric(url, "pulsar_subscription_back_log", 0, topic=topic, subscription="analytics")
    collect_once(check)  # the history starts at 0 published
    before_produce = time.time()
    produce(pulsar_client, topic, 4)
    wait_metric(url, "pulsar_subscription_back_log", 4, topic=topic, subscription="analytics")
    snap = collect_once(check)
    lag = snap.value("mqwatch_consumer_lag_seconds", queue=NS + topic, consumer="analytics")
    assert lag is not None
    # The oldest waiting message was published after before_produce: the lag cannot exceed
    # its age, and the estimator dates it no later than the first collection that saw it.
    assert 0 < lag <= time.time() - before_produce + 0.5
    time.sleep(1.0)
    later = collect_once(check).value("mqwatch_consumer_lag_seconds", queue=NS + topic, consumer="analytics")
    assert later >= lag + 0.9  # nothing consumed: the same message keeps ageing


def test_dlq_from_real_nacks_with_sampled_reasons(pulsar_lite, scenario):
    cfg = pulsar_check(pulsar_lite, service_url=pulsar_lite.extra["service_url"], dlq_sampling={"enabled": True})
    _, check = make_check(cfg)
    try:
        snap = collect_once(check)
    finally:
        check.close()
    assert snap.ok, snap.error
    labels = {"dlq": scenario["dlq"], "source": scenario["payments"], "consumer": "worker"}
    assert snap.value("mqwatch_dlq_messages", **labels) == 3  # no subscription on the DLQ: all still there
    assert snap.value("mqwatch_dlq_messages_total", **labels) == 3
    assert snap.value("mqwatch_dlq_reason_messages", dlq=scenario["dlq"], reason="redelivery_limit_reached") == 3
    newest = snap.value("mqwatch_dlq_last_message_timestamp_seconds", **labels)
    assert scenario["first_produce"] - 1 <= newest <= time.time()
    # mqwatch's own reader subscription on the DLQ is not reported as a consumer.
    assert not [lbl for lbl, _ in snap.samples("mqwatch_consumer_lag_messages") if lbl["queue"] == scenario["dlq"]]


def test_partitioned_topic_is_one_queue(partitioned_pulsar):
    from tests.pulsar.conftest import connect
    import pulsar

    client = connect(partitioned_pulsar)
    try:
        topic = unique("shipments")
        subscribe_and_leave(client, topic, "tracker")
        produce(client, topic, 7, message_routing_mode=pulsar.PartitionsRoutingMode.RoundRobinDistribution)
        url = partitioned_pulsar.extra["metrics_url"]
        # Round robin spreads 7 messages over 3 partitions; the broker labels each partition.
        wait_until(lambda: metric_sum(url, "pulsar_subscription_back_log", topic=topic, subscription="tracker") == 7,
                   timeout=15, message="backlog of 7 over the partitions")
        assert {s.labels["partition"] for s in raw_samples(url) if s.labels.get("topic") == topic} == {"0", "1", "2"}
        snap = collect_once(pulsar_check(partitioned_pulsar))
    finally:
        client.close()
    q = NS + topic
    assert snap.value("mqwatch_pulsar_topic_partitions", queue=q) == 3
    assert snap.value("mqwatch_queue_produced_total", queue=q) == 7
    assert snap.value("mqwatch_consumer_lag_messages", queue=q, consumer="tracker") == 7
    assert not [lbl for lbl, _ in snap.samples("mqwatch_queue_produced_total") if "-partition-" in lbl["queue"]]


def test_canary_round_trip(pulsar_lite):
    cfg = pulsar_check(pulsar_lite, service_url=pulsar_lite.extra["service_url"],
                       canary={"enabled": True, "topic": unique("mqwatch-canary")})
    _, check = make_check(cfg)
    try:
        collect_once(check)
        snap = collect_once(check)
    finally:
        check.close()
    assert snap.ok, snap.error
    hist = snap.value("mqwatch_canary_roundtrip_seconds")
    assert hist.count == 2 and 0 < hist.sum < 10
    for stage in ("produce", "consume", "timeout"):
        assert snap.value("mqwatch_canary_failures_total", stage=stage) == 0


def test_canary_against_dead_broker_counts_failure(pulsar_lite):
    from mqwatch.agent.embedded import free_port

    cfg = pulsar_check(pulsar_lite, service_url=f"pulsar://127.0.0.1:{free_port()}", canary={"enabled": True, "timeout": "1s"})
    cfg["timeout"] = "4s"
    _, check = make_check(cfg)
    try:
        snap = collect_once(check)
    finally:
        check.close()
    assert snap.ok  # the topics still came from /metrics
    # Subscribing comes first (so the canary lands in its backlog), and it is what fails.
    assert snap.value("mqwatch_canary_failures_total", stage="consume") == 1
    assert sum(v for _, v in snap.samples("mqwatch_canary_failures_total")) == 1
    assert [m for r, m in snap.errors if r == "canary_consume" and "cannot subscribe" in m]


def test_abandoned_subscription_is_stopped_not_rewound_while_traffic_flows(pulsar_lite, pulsar_client):
    """pulsar-lite's published counter is live while backlogs refresh every ~5 s, as a real
    broker's counters can be fresher than its last stats snapshot: published - backlog then
    jumps ahead and falls back. That must read as a consumer that is not moving."""
    import threading

    topic = unique("shipments")
    subscribe_and_leave(pulsar_client, topic, "tracking")
    producer = pulsar_client.create_producer(NS + topic)
    stop = threading.Event()

    def publish():
        while not stop.wait(0.25):
            producer.send(b"shipment")

    threading.Thread(target=publish, daemon=True).start()
    _, check = make_check(pulsar_check(pulsar_lite, status_window=3))
    seen = []
    try:
        for _ in range(14):
            snap = collect_once(check)
            seen += [lbl["status"] for lbl, v in snap.samples("mqwatch_consumer_status")
                     if v == 1 and lbl["consumer"] == "tracking" and lbl["queue"] == NS + topic]
            time.sleep(1.0)
    finally:
        stop.set()
        producer.close()
    assert "rewound" not in seen and "lagging" not in seen, seen
    assert seen[-4:] == ["stopped"] * 4, seen
