"""Bad replies, auth errors, slow and dead endpoints: clear errors, and collection goes on.

Admin-API cases use the FIXTURE server (admin_fixture.py); /metrics cases use the real
pulsar-lite broker or a fixture route serving broken exposition text."""

from __future__ import annotations

import time

from mqwatch.agent.embedded import free_port
from tests.helpers import collect_once, make_check
from tests.pulsar.admin_fixture import subscription_json, topic_stats_json

NS = "persistent://public/default/"


def two_topics(fixture):
    fixture.set_cluster()
    fixture.add_topics({
        NS + "orders": topic_stats_json(10, 100, {"billing": subscription_json(3)}),
        NS + "invoices": topic_stats_json(20, 200, {"billing": subscription_json(1)}),
    })


def test_admin_401_fails_the_check_with_auth_reason(admin_fixture):
    two_topics(admin_fixture)
    admin_fixture.failures["/admin/v2/tenants"] = (401, "Authentication required")
    snap = collect_once({"kind": "pulsar", "name": "events", "admin_url": admin_fixture.url})
    assert not snap.ok
    assert "401" in snap.error and "Authentication required" in snap.error and "auth.token" in snap.error
    assert ("auth" in {r for r, _ in snap.errors})


def test_admin_500_on_one_topic_keeps_the_others(admin_fixture):
    two_topics(admin_fixture)
    admin_fixture.failures["/admin/v2/persistent/public/default/orders/stats"] = (500, "Failed to read ledger")
    snap = collect_once({"kind": "pulsar", "name": "events", "admin_url": admin_fixture.url})
    assert snap.ok
    assert snap.value("mqwatch_consumer_lag_messages", queue=NS + "invoices", consumer="billing") == 1
    assert snap.value("mqwatch_consumer_lag_messages", queue=NS + "orders", consumer="billing") is None
    assert [(r, m) for r, m in snap.errors if r == "broker_error" and "stats of " + NS + "orders" in m and "Failed to read ledger" in m]


def test_admin_topic_deleted_during_collection_is_404(admin_fixture):
    two_topics(admin_fixture)
    del admin_fixture.routes["/admin/v2/persistent/public/default/invoices/stats"]
    snap = collect_once({"kind": "pulsar", "name": "events", "admin_url": admin_fixture.url})
    assert snap.ok
    assert snap.value("mqwatch_consumer_lag_messages", queue=NS + "orders", consumer="billing") == 3
    assert [m for r, m in snap.errors if r == "not_found" and "invoices" in m]


def test_admin_malformed_stats_is_bad_reply(admin_fixture):
    two_topics(admin_fixture)
    admin_fixture.routes["/admin/v2/persistent/public/default/orders/stats"] = {"subscriptions": {"billing": {"msgBacklog": "lots"}}}
    snap = collect_once({"kind": "pulsar", "name": "events", "admin_url": admin_fixture.url})
    assert snap.ok
    assert [m for r, m in snap.errors if r == "bad_reply" and "msgBacklog is not a number" in m]
    assert snap.value("mqwatch_consumer_lag_messages", queue=NS + "invoices", consumer="billing") == 1


def test_slow_admin_endpoint_times_out_within_the_check_timeout(admin_fixture):
    two_topics(admin_fixture)
    admin_fixture.delays["/admin/v2/persistent/public/default/orders/stats"] = 5
    started = time.monotonic()
    snap = collect_once({"kind": "pulsar", "name": "events", "admin_url": admin_fixture.url,
                         "timeout": "2s", "request_timeout": "500ms"})
    assert time.monotonic() - started < 2.0
    assert snap.ok
    assert [m for r, m in snap.errors if r == "timeout" and "orders" in m]
    assert snap.value("mqwatch_consumer_lag_messages", queue=NS + "invoices", consumer="billing") == 1


def test_admin_down_falls_back_to_metrics(pulsar_lite, admin_fixture):
    admin_fixture.failures["/admin/v2/tenants"] = (500, "Internal error")
    snap = collect_once({"kind": "pulsar", "name": "events", "admin_url": admin_fixture.url,
                         "metrics_url": pulsar_lite.extra["metrics_url"]})
    assert snap.ok
    assert [m for r, m in snap.errors if r == "broker_error" and "using /metrics instead" in m]
    assert snap.value("mqwatch_pulsar_broker_healthy", broker=f"127.0.0.1:{pulsar_lite.extra['metrics_port']}") == 1


def test_dead_broker_is_down_with_connection_reason():
    snap = collect_once({"kind": "pulsar", "name": "events", "metrics_url": f"http://127.0.0.1:{free_port()}/metrics",
                         "timeout": "2s"})
    assert not snap.ok
    assert "connection" in {r for r, _ in snap.errors}
    assert "cannot connect" in snap.error


def test_malformed_exposition_is_a_clear_error(admin_fixture, pulsar_lite):
    admin_fixture.routes["/metrics"] = b'pulsar_subscription_back_log{topic="orders" 12\n'
    bad = f"{admin_fixture.url}/metrics"
    snap = collect_once({"kind": "pulsar", "name": "events", "metrics_url": [bad, pulsar_lite.extra["metrics_url"]]})
    assert snap.ok  # the healthy broker's topics are still reported
    assert [m for r, m in snap.errors if r == "bad_reply" and bad in m and "unparsable exposition" in m]
    assert snap.value("mqwatch_pulsar_broker_healthy", broker=admin_fixture.address) == 0
    alone = collect_once({"kind": "pulsar", "name": "events", "metrics_url": bad})
    assert not alone.ok and "unparsable exposition" in alone.error


def test_frozen_broker_times_out_and_recovers(fresh_pulsar):
    cfg = {"kind": "pulsar", "name": "events", "metrics_url": fresh_pulsar.extra["metrics_url"], "timeout": "1500ms"}
    _, check = make_check(cfg)
    fresh_pulsar.pause()
    try:
        started = time.monotonic()
        snap = collect_once(check)
        assert time.monotonic() - started < 2.0
        assert not snap.ok and "timeout" in {r for r, _ in snap.errors}
    finally:
        fresh_pulsar.resume()
    assert collect_once(check).ok


def test_running_out_of_time_is_one_error_not_one_per_topic(admin_fixture):
    admin_fixture.set_cluster()
    admin_fixture.add_topics({f"{NS}t{i}": topic_stats_json(1, 1, {"s": subscription_json(1)}) for i in range(40)})
    for i in range(40):
        admin_fixture.delays[f"/admin/v2/persistent/public/default/t{i}/stats"] = 0.3
    snap = collect_once({"kind": "pulsar", "name": "events", "admin_url": admin_fixture.url,
                         "timeout": "1s", "max_concurrency": 2})
    not_fetched = [m for r, m in snap.errors if r == "timeout" and "topics not fetched" in m]
    assert len(not_fetched) == 1 and "of 40 topics not fetched" in not_fetched[0]
    # Besides that summary, only the requests in flight when time ran out (max_concurrency) time out.
    assert len([r for r, _ in snap.errors if r == "timeout"]) <= 1 + 2 + 1
    # Running out of time says nothing about the broker: no health verdict rather than a false "unhealthy".
    assert not [v for _, v in snap.samples("mqwatch_pulsar_broker_healthy") if v == 0]
    reported = snap.samples("mqwatch_consumer_lag_messages")
    assert 0 < len(reported) < 40  # what was fetched in time is still reported


def test_credentials_in_a_url_never_reach_errors():
    port = free_port()
    snap = collect_once({"kind": "pulsar", "name": "events", "metrics_url": f"http://mq:hunter2@127.0.0.1:{port}/metrics",
                         "timeout": "2s"})
    assert not snap.ok
    assert "hunter2" not in snap.error and not [m for _, m in snap.errors if "hunter2" in m]
    assert f"127.0.0.1:{port}" in snap.error
