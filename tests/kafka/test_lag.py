"""Kafka consumer lag, group state and topic health against a real Kafka-protocol broker (tansu)."""

import subprocess
import sys
import time

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import (
    collect_once, kafka_commit, kafka_create_topics, kafka_delete_group, kafka_produce, unique,
)


def kafka_check(bootstrap, **options):
    return {"kind": "kafka", "name": "shop", "bootstrap_servers": bootstrap, **options}


def prom_samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def lag_scenario(bootstrap):
    orders, payments, group = unique("orders"), unique("payments"), unique("billing")
    kafka_create_topics(bootstrap, {orders: 3, payments: 1})
    kafka_produce(bootstrap, orders, {0: 10, 1: 7, 2: 4})
    kafka_produce(bootstrap, payments, {0: 5})
    kafka_commit(bootstrap, group, {(orders, 0): 4, (orders, 1): 7, (orders, 2): 1, (payments, 0): 5})
    return orders, payments, group


def test_check_prom_reports_exactly_the_lag_created(kafka_bootstrap, tmp_path):
    orders, payments, group = lag_scenario(kafka_bootstrap)
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text(f"""
checks:
  - kind: kafka
    name: shop
    bootstrap_servers: {kafka_bootstrap}
    granularity: partition
""")
    run = subprocess.run([sys.executable, "-m", "mqwatch.agent", "check", "-c", str(cfg), "--format", "prom"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    got = prom_samples(run.stdout)
    base = (("cluster", "shop"), ("consumer", group))

    def lag(queue, partition=None):
        labels = dict(base + (("queue", queue), ("system", "kafka")))
        if partition is None:
            return got[("mqwatch_consumer_lag_messages", tuple(sorted(labels.items())))]
        labels["partition"] = str(partition)
        return got[("mqwatch_partition_lag_messages", tuple(sorted(labels.items())))]

    assert lag(orders) == (10 - 4) + (7 - 7) + (4 - 1)
    assert [lag(orders, p) for p in range(3)] == [6, 0, 3]
    assert lag(payments) == 0

    def key(name, **labels):
        return name, tuple(sorted({"cluster": "shop", "system": "kafka", **labels}.items()))

    assert got[key("mqwatch_up")] == 1
    assert got[key("mqwatch_queue_messages", queue=orders)] == 21
    assert got[key("mqwatch_queue_produced_total", queue=orders)] == 21
    assert got[key("mqwatch_kafka_topic_partitions", queue=orders)] == 3
    assert got[key("mqwatch_kafka_offline_partitions", queue=orders)] == 0
    assert got[key("mqwatch_consumer_members", consumer=group)] == 0
    assert got[key("mqwatch_consumer_state", consumer=group, state="Empty")] == 1
    assert got[key("mqwatch_consumer_state", consumer=group, state="Stable")] == 0
    assert got[key("mqwatch_brokers")] == 1
    assert ("mqwatch_build_info", (("python_version", sys.version.split()[0]), ("version", __import__("agent").__version__))) in got


def test_topic_granularity_has_no_partition_series(kafka_bootstrap):
    orders, _, group = lag_scenario(kafka_bootstrap)
    snap = collect_once(kafka_check(kafka_bootstrap))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_consumer_lag_messages", queue=orders, consumer=group) == 9
    assert snap.samples("mqwatch_partition_lag_messages") == []


def test_lag_follows_commits_and_production(kafka_bootstrap):
    orders, _, group = lag_scenario(kafka_bootstrap)
    kafka_produce(kafka_bootstrap, orders, {1: 5})
    kafka_commit(kafka_bootstrap, group, {(orders, 0): 10})
    snap = collect_once(kafka_check(kafka_bootstrap))
    assert snap.value("mqwatch_consumer_lag_messages", queue=orders, consumer=group) == 0 + 5 + 3


def test_group_filters_include_and_exclude(kafka_bootstrap):
    orders = unique("orders")
    kafka_create_topics(kafka_bootstrap, {orders: 1})
    kafka_produce(kafka_bootstrap, orders, {0: 3})
    keep, drop = unique("svc-keep"), unique("svc-drop")
    for g in (keep, drop):
        kafka_commit(kafka_bootstrap, g, {(orders, 0): 1})
    snap = collect_once(kafka_check(kafka_bootstrap, groups={"include": ["^svc-"], "exclude": ["-drop-"]}))
    consumers = {lbl["consumer"] for lbl, _ in snap.samples("mqwatch_consumer_lag_messages")}
    assert keep in consumers and drop not in consumers
    assert all(lbl["consumer"].startswith("svc-") for lbl, _ in snap.samples("mqwatch_consumer_members"))


def test_topic_filter_drops_topic_and_its_lag(kafka_bootstrap):
    orders, payments, group = lag_scenario(kafka_bootstrap)
    snap = collect_once(kafka_check(kafka_bootstrap, topics={"exclude": ["^payments-"]}))
    assert snap.value("mqwatch_consumer_lag_messages", queue=orders, consumer=group) == 9
    assert snap.value("mqwatch_consumer_lag_messages", queue=payments, consumer=group) is None
    assert snap.value("mqwatch_queue_messages", queue=payments) is None


def test_group_without_offsets_on_a_topic_has_no_series_for_it(kafka_bootstrap):
    orders, payments, _ = lag_scenario(kafka_bootstrap)
    only_orders = unique("only-orders")
    kafka_commit(kafka_bootstrap, only_orders, {(orders, 0): 10})
    snap = collect_once(kafka_check(kafka_bootstrap))
    assert snap.value("mqwatch_consumer_lag_messages", queue=orders, consumer=only_orders) == 0
    assert snap.value("mqwatch_consumer_lag_messages", queue=payments, consumer=only_orders) is None


def test_deleted_group_vanishes_and_empty_group_keeps_its_lag(kafka_bootstrap):
    orders, _, group = lag_scenario(kafka_bootstrap)
    other = unique("other")
    kafka_commit(kafka_bootstrap, other, {(orders, 0): 0})
    _, check = __import__("tests.helpers", fromlist=["make_check"]).make_check(kafka_check(kafka_bootstrap))
    first = collect_once(check)
    assert first.value("mqwatch_consumer_lag_messages", queue=orders, consumer=group) == 9
    kafka_delete_group(kafka_bootstrap, group)
    second = collect_once(check)
    assert second.value("mqwatch_consumer_lag_messages", queue=orders, consumer=group) is None
    assert second.value("mqwatch_consumer_members", consumer=group) is None
    assert not [lbl for lbl, _ in second.samples("mqwatch_consumer_state") if lbl["consumer"] == group]
    # the other group has no members at all, and still reports its lag
    assert second.value("mqwatch_consumer_lag_messages", queue=orders, consumer=other) == 10
    check.close()


def test_deleted_topic_vanishes(kafka_bootstrap):
    from confluent_kafka.admin import AdminClient

    orders, _, group = lag_scenario(kafka_bootstrap)
    _, check = __import__("tests.helpers", fromlist=["make_check"]).make_check(kafka_check(kafka_bootstrap))
    assert collect_once(check).value("mqwatch_queue_messages", queue=orders) == 21
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for f in admin.delete_topics([orders]).values():
        f.result(10)
    snap = collect_once(check)
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue=orders) is None
    assert snap.value("mqwatch_consumer_lag_messages", queue=orders, consumer=group) is None
    check.close()


def test_broker_down_reports_up_zero_with_reason(fresh_tansu):
    address = fresh_tansu.address
    fresh_tansu.stop()
    t0 = time.monotonic()
    snap = collect_once(kafka_check(address, timeout="3s"))
    assert time.monotonic() - t0 < 3.5
    assert not snap.ok
    assert snap.errors[-1][0] in ("connection", "timeout")
    assert address.split(":")[0] in snap.error or "metadata" in snap.error


def test_unresponsive_broker_times_out_within_the_check_timeout(fresh_tansu):
    fresh_tansu.pause()  # the port still accepts connections; nothing ever answers
    t0 = time.monotonic()
    snap = collect_once(kafka_check(fresh_tansu.address, timeout="2s"))
    elapsed = time.monotonic() - t0
    assert not snap.ok
    assert elapsed < 2.5, elapsed
    # librdkafka sees the unanswered handshake as a failed connection or a timed-out request
    assert snap.errors[-1][0] in ("timeout", "connection")
    assert "metadata" in snap.error


def test_invalid_librdkafka_setting_is_a_clear_collection_error(kafka_bootstrap):
    # Unknown names and bad values are refused by `validate` (tests/kafka/test_config.py); a
    # file librdkafka cannot load is only found when the client is created.
    snap = collect_once(kafka_check(kafka_bootstrap, client={"security.protocol": "ssl",
                                                             "ssl.ca.location": "/nonexistent/ca.pem"}))
    assert not snap.ok
    assert snap.errors[-1][0] == "config"
    assert "ssl.ca.location" in snap.error
