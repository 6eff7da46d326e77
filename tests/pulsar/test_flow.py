"""Pulsar flow signals: consumed, drain, cursor resets, produced across counter restarts, TTL expiry.

Admin-path tests use the FIXTURE server in admin_fixture.py (pulsar-lite has no admin API;
shapes from apache/pulsar's TopicStatsImpl and SubscriptionStatsImpl, whose `totalMsgExpired`
counts messages expired by the subscription's TTL). The consumed and drain test runs on the
real pulsar-lite broker.
"""

from __future__ import annotations

import math
import time

import pulsar

from tests.helpers import collect_once, make_check, unique, wait_until
from tests.pulsar.admin_fixture import subscription_json, topic_stats_json
from tests.pulsar.workload import produce

NS = "persistent://public/default/"
ORDERS = {"queue": NS + "orders", "consumer": "billing"}


def _admin(fixture):
    fixture.set_cluster()
    _, check = make_check({"kind": "pulsar", "name": "events", "admin_url": fixture.url})
    return check


def _state(fixture, msg_in, backlog, expired=0, delivered=0):
    sub = subscription_json(backlog, consumers=1)
    sub["totalMsgExpired"], sub["msgOutCounter"] = expired, delivered
    fixture.add_topics({NS + "orders": topic_stats_json(msg_in, 1, {"billing": sub})})


def test_consumed_and_produced_keep_counting_when_the_topic_moves_to_another_broker(admin_fixture):
    """msgInCounter and msgOutCounter count since the topic was loaded: a broker change restarts both."""
    check = _admin(admin_fixture)
    try:
        _state(admin_fixture, 1000, 10, delivered=990)
        snap = collect_once(check)
        assert snap.value("mqwatch_consumer_consumed_total", **ORDERS) == 990
        _state(admin_fixture, 1040, 20, delivered=1020)  # 40 published, 30 delivered
        snap = collect_once(check)
        assert snap.value("mqwatch_consumer_consumed_total", **ORDERS) == 1020
        assert snap.value("mqwatch_queue_produced_total", queue=NS + "orders") == 1040
        _state(admin_fixture, 30, 22, delivered=28)  # loaded again elsewhere: both counters restarted
        snap = collect_once(check)
        assert snap.value("mqwatch_consumer_consumed_total", **ORDERS) == 1048
        assert snap.value("mqwatch_queue_produced_total", queue=NS + "orders") == 1070
    finally:
        check.close()


def test_messages_expired_by_ttl_are_lost_messages_and_survive_a_counter_restart(admin_fixture):
    check = _admin(admin_fixture)
    try:
        _state(admin_fixture, 100, 50, expired=0)
        assert collect_once(check).value("mqwatch_consumer_lost_messages_total", **ORDERS) == 0
        _state(admin_fixture, 100, 20, expired=30)  # the TTL expired 30 unread messages
        assert collect_once(check).value("mqwatch_consumer_lost_messages_total", **ORDERS) == 30
        _state(admin_fixture, 5, 5, expired=4)  # topic reloaded: its stats restart at 0
        assert collect_once(check).value("mqwatch_consumer_lost_messages_total", **ORDERS) == 34
    finally:
        check.close()


def test_real_pulsar_expired_metric_is_read_from_broker_metrics():
    """A recorded line of real Pulsar's /metrics (PrometheusMetricsGenerator writes
    pulsar_subscription_total_msg_expired as a gauge per subscription): pulsar-lite has none."""
    from mqwatch.checks.pulsar.exposition import parse_exposition

    text = ('# TYPE pulsar_subscription_total_msg_expired gauge\n'
            'pulsar_subscription_total_msg_expired{cluster="c",namespace="public/default",'
            'topic="persistent://public/default/orders-partition-1",subscription="billing"} 7\n')
    sub = parse_exposition(text).topics[NS + "orders"].partitions[1].subscriptions["billing"]
    assert sub.expired == 7


def test_subscription_acknowledging_on_pulsar_lite_counts_consumed_and_drains(pulsar_lite, pulsar_client):
    topic = unique("flow-orders")
    # a receiver queue of 1: the broker dispatches (and counts as delivered) only what is asked for
    consumer = pulsar_client.subscribe(topic, "billing", consumer_type=pulsar.ConsumerType.Shared, receiver_queue_size=1)
    produce(pulsar_client, topic, 40)
    _, check = make_check({"kind": "pulsar", "name": "events", "metrics_url": pulsar_lite.extra["metrics_url"],
                           "topics": {"include": [topic]}})
    labels = {"queue": NS + topic, "consumer": "billing"}
    try:
        def lag():
            return collect_once(check).value("mqwatch_consumer_lag_messages", **labels)

        wait_until(lambda: lag() == 40, timeout=20, message="the backlog of 40")
        start = collect_once(check).value("mqwatch_consumer_consumed_total", **labels)
        for _ in range(25):
            consumer.acknowledge(consumer.receive(timeout_millis=5000))
        # pulsar-lite refreshes backlogs every few seconds: wait for the acknowledgements to show
        snap = wait_until(lambda: (s := collect_once(check)).value("mqwatch_consumer_lag_messages", **labels) == 15 and s,
                          timeout=20, message="the backlog to fall to 15")
        assert start <= 1
        assert 25 <= snap.value("mqwatch_consumer_consumed_total", **labels) - start <= 27
        drain = snap.value("mqwatch_consumer_drain_seconds", **labels)
        assert 0 < drain < math.inf, drain
    finally:
        consumer.close()
        check.close()


def _canary_counts(snap):
    return tuple(snap.value(f"mqwatch_canary_{k}_messages_total") for k in ("lost", "duplicated", "reordered"))


def test_canary_counts_a_replayed_message_as_duplicated_and_a_skipped_one_as_lost(pulsar_lite, pulsar_client):
    """On the real broker: a replay is a copy of a canary message produced again; the loss is
    a stored message removed from the canary's subscription before the canary consumed it."""
    topic = unique("flow-canary")
    _, check = make_check({"kind": "pulsar", "name": "events", "metrics_url": pulsar_lite.extra["metrics_url"],
                           "service_url": pulsar_lite.extra["service_url"], "topics": {"include": [topic]},
                           "canary": {"enabled": True, "topic": topic, "lost_after": "1s"}})
    try:
        snap = collect_once(check)
        assert snap.value("mqwatch_canary_roundtrip_seconds").count == 1
        assert _canary_counts(snap) == (0, 0, 0)
        canary = check._canary
        reader = pulsar_client.create_reader(topic, pulsar.MessageId.earliest)
        first = reader.read_next(timeout_millis=5000)
        reader.close()
        replay = pulsar_client.create_producer(topic, batching_enabled=False)
        replay.send(first.data(), properties=first.properties())
        replay.close()
        snap = collect_once(check)  # the round trip drains the replayed copy on its way
        assert _canary_counts(snap) == (0, 1, 0)

        # a message stored by the broker, then skipped by the subscription before it was consumed
        canary._producer.send(b"mqwatch canary", properties={"mqwatch-canary-run": canary._run_id,
                                                             "mqwatch-canary-seq": str(canary._seq + 1)})
        canary.sequence.acknowledged(canary._seq + 1, time.monotonic())
        canary._seq += 1
        # removed from the subscription unread, as a TTL expiry does: pulsar-lite has no TTL and no
        # admin API, and a seek leaves its subscription without deliveries
        canary._consumer.acknowledge(canary._consumer.receive(timeout_millis=5000))
        snap = collect_once(check)
        assert snap.value("mqwatch_canary_roundtrip_seconds").count == 3
        assert _canary_counts(snap) == (0, 1, 0)  # within lost_after: not lost yet
        time.sleep(1.1)
        assert _canary_counts(collect_once(check)) == (1, 1, 0)
    finally:
        check.close()


def test_retention_headroom_from_namespace_ttl_and_backlog_quota(admin_fixture):
    """Admin FIXTURE replies in apache/pulsar's shapes: messageTTL is an Integer (no body when
    unset), backlogQuotaMap maps quota types to BacklogQuota objects."""
    now_ms = int(time.time() * 1000)
    admin_fixture.set_cluster()
    sub = subscription_json(5, consumers=1, earliest_publish_ms=now_ms - 600_000)  # oldest unread: 10 min
    admin_fixture.add_topics({NS + "orders": topic_stats_json(50, 1, {"billing": sub}),
                              "persistent://other/ns/events": topic_stats_json(50, 1, {"billing": dict(sub)})})
    policies = "/admin/v2/namespaces/public/default"
    admin_fixture.routes[policies + "/messageTTL"] = 3600
    admin_fixture.routes[policies + "/backlogQuotaMap"] = {
        "destination_storage": {"limit": -1, "limitSize": 10737418240, "limitTime": -1, "policy": "producer_request_hold"},
        "message_age": {"limit": -1, "limitSize": -1, "limitTime": 1800, "policy": "consumer_backlog_eviction"},
    }
    _, check = make_check({"kind": "pulsar", "name": "events", "admin_url": admin_fixture.url})
    try:
        snap = collect_once(check)
        assert snap.ok and not snap.errors, snap.errors
        room = snap.value("mqwatch_consumer_retention_headroom_seconds", **ORDERS)
        assert 1800 - 600 - 5 <= room <= 1800 - 600  # the eviction quota (30 min) is the nearer limit
        # a namespace without TTL or eviction quota: retention unknown, no series
        assert snap.value("mqwatch_consumer_retention_headroom_seconds", queue="persistent://other/ns/events",
                          consumer="billing") is None
        policy_reads = sum("messageTTL" in r for r in admin_fixture.requests)
        collect_once(check)
        assert sum("messageTTL" in r for r in admin_fixture.requests) == policy_reads  # not every collection
    finally:
        check.close()


def test_namespace_limits_from_policy_shapes():
    from mqwatch.checks.pulsar.retention import limit_seconds

    assert limit_seconds(None, {}) is None
    assert limit_seconds(0, {}) is None  # TTL 0: disabled
    assert limit_seconds(7200, {}) == 7200
    hold = {"message_age": {"limitTime": 60, "policy": "producer_request_hold"}}  # blocks producers, deletes nothing
    assert limit_seconds(None, hold) is None
    evict = {"message_age": {"limitTime": 60, "policy": "consumer_backlog_eviction"}}
    assert limit_seconds(7200, evict) == 60


def test_nacked_redeliveries_count_as_consumed_while_the_backlog_does_not_drain(pulsar_lite, pulsar_client):
    """A consumer that negatively acknowledges everything: the broker delivers the same messages
    again and again. Pulsar's stats have no per-message delivery count (the redelivery count
    lives in the client), so there is no mqwatch_pending_max_deliveries for Pulsar; what mqwatch
    reports is the delivered counter rising by every redelivery while the backlog stays, so
    the drain ETA is +Inf (MqwatchConsumerNotDraining)."""
    topic = unique("flow-nacks")
    consumer = pulsar_client.subscribe(topic, "billing", consumer_type=pulsar.ConsumerType.Shared,
                                       negative_ack_redelivery_delay_ms=20, receiver_queue_size=1)
    produce(pulsar_client, topic, 5)
    _, check = make_check({"kind": "pulsar", "name": "events", "metrics_url": pulsar_lite.extra["metrics_url"],
                           "topics": {"include": [topic]}})
    labels = {"queue": NS + topic, "consumer": "billing"}
    try:
        wait_until(lambda: collect_once(check).value("mqwatch_consumer_lag_messages", **labels) == 5, timeout=20,
                   message="the backlog of 5")
        start = collect_once(check).value("mqwatch_consumer_consumed_total", **labels)
        deliveries, deadline = 0, time.monotonic() + 20
        while deliveries < 20 and time.monotonic() < deadline:
            try:
                consumer.negative_acknowledge(consumer.receive(timeout_millis=500))
                deliveries += 1
            except pulsar.Timeout:
                continue
        assert deliveries >= 20  # 5 messages, each delivered about 4 times
        snap = wait_until(lambda: (s := collect_once(check)).value("mqwatch_consumer_consumed_total", **labels)
                          - start >= 20 and s, timeout=20, message="the redeliveries counted")
        assert snap.value("mqwatch_consumer_lag_messages", **labels) == 5  # nothing acknowledged
        assert snap.samples("mqwatch_pending_max_deliveries") == []
        time.sleep(0.5)
        assert collect_once(check).value("mqwatch_consumer_drain_seconds", **labels) == math.inf
    finally:
        consumer.close()
        check.close()


def test_redelivering_subscription_exports_no_delivery_count_it_does_not_have(admin_fixture):
    """Real Pulsar stats (SubscriptionStatsImpl / ConsumerStatsImpl) give `msgRateRedeliver`, a
    rate, and `unackedMessages`, which counts first deliveries too: neither is a per-message
    delivery count, so the two pending-delivery series stay absent (README, "Redelivery") while
    the unacked messages and the dispatch counter (redeliveries included) are reported."""
    check = _admin(admin_fixture)
    try:
        sub = subscription_json(40, unacked=7, consumers=1)
        sub["msgRateRedeliver"] = sub["consumers"][0]["msgRateRedeliver"] = 12.5
        sub["msgOutCounter"] = sub["consumers"][0]["msgOutCounter"] = 300
        admin_fixture.add_topics({NS + "orders": topic_stats_json(100, 1, {"billing": sub})})
        snap = collect_once(check)
        assert snap.value("mqwatch_pending_messages", **ORDERS) == 7
        assert snap.value("mqwatch_consumer_consumed_total", **ORDERS) == 300
        for name in ("mqwatch_pending_redelivered_messages", "mqwatch_pending_max_deliveries"):
            assert snap.samples(name) == [], name
    finally:
        check.close()
