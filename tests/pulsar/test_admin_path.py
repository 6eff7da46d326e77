"""The admin REST API path, against the FIXTURE server in admin_fixture.py (pulsar-lite has
no admin API; the replies follow apache/pulsar's TopicStatsImpl, SubscriptionStatsImpl and
PartitionedTopicStatsImpl, see that module)."""

from __future__ import annotations

import time

from tests.helpers import collect_once, make_check
from tests.pulsar.admin_fixture import subscription_json, topic_stats_json

NS = "persistent://public/default/"


def admin_check(fixture, **extra) -> dict:
    return {"kind": "pulsar", "name": "events", "admin_url": fixture.url, **extra}


def shop(fixture, now_ms: int) -> None:
    fixture.set_cluster()
    fixture.add_topics(
        {
            NS + "orders": topic_stats_json(100, 4096, {
                "billing": subscription_json(4, unacked=2, consumers=2, blocked=True, earliest_publish_ms=now_ms - 120_000),
                "audit": subscription_json(0, consumers=1),
            }),
            NS + "orders-billing-DLQ": topic_stats_json(6, 600, {}),
            NS + "orders-billing-RETRY": topic_stats_json(9, 900, {"billing": subscription_json(2, consumers=1)}),
        },
        partitioned={
            NS + "shipments": [
                topic_stats_json(10, 100, {"tracker": subscription_json(3, consumers=1, earliest_publish_ms=now_ms - 30_000)}),
                topic_stats_json(20, 200, {"tracker": subscription_json(5, consumers=1, earliest_publish_ms=now_ms - 90_000)}),
            ],
        },
    )


def test_admin_reports_exact_lag_seconds_blocked_and_pending(admin_fixture):
    now_ms = int(time.time() * 1000)
    shop(admin_fixture, now_ms)
    snap = collect_once(admin_check(admin_fixture))
    assert snap.ok, (snap.error, snap.errors)
    q = NS + "orders"
    assert snap.value("mqwatch_consumer_lag_messages", queue=q, consumer="billing") == 4
    assert 119 <= snap.value("mqwatch_consumer_lag_seconds", queue=q, consumer="billing") <= 125
    assert snap.value("mqwatch_consumer_lag_seconds", queue=q, consumer="audit") == 0
    assert snap.value("mqwatch_pending_messages", queue=q, consumer="billing") == 2
    assert snap.value("mqwatch_consumer_blocked", queue=q, consumer="billing") == 1
    assert snap.value("mqwatch_consumer_blocked", queue=q, consumer="audit") == 0
    assert snap.value("mqwatch_consumer_members", queue=q, consumer="billing") == 2
    assert snap.value("mqwatch_consumer_status", queue=q, consumer="billing", status="stalled") is not None
    assert snap.value("mqwatch_queue_produced_total", queue=q) == 100
    assert snap.value("mqwatch_queue_bytes", queue=q) == 4096
    assert snap.value("mqwatch_queue_messages", queue=q) == 4


def test_admin_partitioned_topic_aggregates_partitions(admin_fixture):
    now_ms = int(time.time() * 1000)
    shop(admin_fixture, now_ms)
    snap = collect_once(admin_check(admin_fixture))
    q = NS + "shipments"
    assert snap.value("mqwatch_pulsar_topic_partitions", queue=q) == 2
    assert snap.value("mqwatch_consumer_lag_messages", queue=q, consumer="tracker") == 8
    assert snap.value("mqwatch_queue_produced_total", queue=q) == 30
    # The oldest waiting message of any partition decides.
    assert 89 <= snap.value("mqwatch_consumer_lag_seconds", queue=q, consumer="tracker") <= 95
    assert snap.value("mqwatch_consumer_members", queue=q, consumer="tracker") == 1
    assert not [lbl for lbl, _ in snap.samples("mqwatch_queue_produced_total") if "-partition-" in lbl["queue"]]


def test_admin_dead_letter_and_retry_topics(admin_fixture):
    shop(admin_fixture, int(time.time() * 1000))
    snap = collect_once(admin_check(admin_fixture))
    labels = {"dlq": NS + "orders-billing-DLQ", "source": NS + "orders", "consumer": "billing"}
    assert snap.value("mqwatch_dlq_messages", **labels) == 6
    assert snap.value("mqwatch_dlq_messages_total", **labels) == 6
    assert snap.value("mqwatch_retry_messages", queue=NS + "orders-billing-RETRY", source=NS + "orders") == 2


def test_admin_broker_health(admin_fixture):
    shop(admin_fixture, int(time.time() * 1000))
    snap = collect_once(admin_check(admin_fixture))
    assert snap.value("mqwatch_brokers") == 1
    assert snap.value("mqwatch_pulsar_broker_healthy", broker=admin_fixture.address) == 1
    admin_fixture.set_cluster(healthy=False)
    snap = collect_once(admin_check(admin_fixture))
    assert snap.ok  # an unhealthy broker is a finding, not a failed collection
    assert snap.value("mqwatch_pulsar_broker_healthy", broker=admin_fixture.address) == 0
    assert any(r == "broker_unhealthy" and "500" in m for r, m in snap.errors)


def test_admin_requests_ask_for_earliest_publish_time(admin_fixture):
    shop(admin_fixture, int(time.time() * 1000))
    collect_once(admin_check(admin_fixture))
    stats = [r for r in admin_fixture.requests if "/stats" in r or "/partitioned-stats" in r]
    assert stats and all("getEarliestTimeInBacklog=true" in r and "getPreciseBacklog=false" in r for r in stats)
    assert any("/partitioned-stats?perPartition=true" in r for r in stats)
    # Partitions of a partitioned topic are read through their parent, never one by one.
    assert not [r for r in stats if "-partition-" in r]


def test_token_is_sent_and_never_shown(admin_fixture, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-jwt\n")
    shop(admin_fixture, int(time.time() * 1000))
    cfg, check = make_check(admin_check(admin_fixture, auth={"token_file": str(token_file)}))
    try:
        assert "s3cr3t" not in repr(cfg.options)
        snap = collect_once(check)
    finally:
        check.close()
    assert snap.ok
    assert admin_fixture.authorizations and set(admin_fixture.authorizations) == {"Bearer s3cr3t-jwt"}


def test_vanished_topic_and_subscription_disappear_with_their_state(admin_fixture):
    shop(admin_fixture, int(time.time() * 1000))
    _, check = make_check(admin_check(admin_fixture))
    first = collect_once(check)
    assert first.value("mqwatch_consumer_lag_messages", queue=NS + "orders", consumer="audit") == 0
    assert first.value("mqwatch_dlq_messages_total", dlq=NS + "orders-billing-DLQ", source=NS + "orders", consumer="billing") == 6
    # The DLQ topic is deleted and `audit` unsubscribes.
    admin_fixture.routes.clear()
    admin_fixture.set_cluster()
    admin_fixture.add_topics({NS + "orders": topic_stats_json(100, 4096, {"billing": subscription_json(4)})})
    second = collect_once(check)
    assert second.ok
    assert second.value("mqwatch_consumer_lag_messages", queue=NS + "orders", consumer="audit") is None
    assert not second.samples("mqwatch_dlq_messages_total")
    assert not [lbl for lbl, _ in second.samples("mqwatch_consumer_status") if lbl["consumer"] == "audit"]
    assert (NS + "orders", "audit") not in check.status._windows
    assert check.arrivals.total(NS + "orders-billing-DLQ") is None
    check.close()


from hypothesis import given, settings, strategies as st  # noqa: E402

from mqwatch.checks.pulsar.admin import BadReply, partition_from_stats, topic_from_partitioned_stats  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_stats_like = st.fixed_dictionaries({}, optional={
    "msgInCounter": _json, "storageSize": _json, "partitions": _json,
    "subscriptions": st.dictionaries(st.text(max_size=6), st.fixed_dictionaries({}, optional={
        "msgBacklog": _json, "unackedMessages": _json, "consumers": _json,
        "blockedSubscriptionOnUnackedMsgs": _json, "earliestMsgPublishTimeInBacklog": _json}) | _json, max_size=3) | _json,
})


@settings(max_examples=150, deadline=None)
@given(_stats_like | _json)
def test_any_stats_reply_is_read_or_rejected_clearly(doc):
    """Whatever JSON a broker (or proxy) sends, the reply is either read or a BadReply naming the topic."""
    for read in (lambda: partition_from_stats(doc, NS + "orders"), lambda: topic_from_partitioned_stats(NS + "orders", doc)):
        try:
            read()
        except BadReply as e:
            assert NS + "orders" in str(e)


def test_topic_moving_to_another_broker_is_not_a_rewind(admin_fixture):
    """msgInCounter counts since the topic was loaded: a broker change restarts it. A cursor
    reset (backlog up, counter unchanged) is a rewind; a counter restart is not."""
    admin_fixture.set_cluster()

    def state(msg_in, backlog):
        admin_fixture.add_topics({NS + "orders": topic_stats_json(msg_in, 1, {"billing": subscription_json(backlog, consumers=1)})})

    _, check = make_check(admin_check(admin_fixture))
    state(1000, 10)
    collect_once(check)
    state(30, 12)  # unloaded and loaded again elsewhere: the counter restarted
    moved = collect_once(check)
    assert moved.value("mqwatch_consumer_status", queue=NS + "orders", consumer="billing", status="rewound") == 0
    state(30, 25)  # someone reset the cursor back by 13 messages
    rewound = collect_once(check)
    assert rewound.value("mqwatch_consumer_status", queue=NS + "orders", consumer="billing", status="rewound") == 1
    check.close()
