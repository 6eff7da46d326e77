"""Issue 12: every reply read from a Pulsar endpoint is bounded in size and time, and the token
goes only to configured hosts. The misbehaving endpoints are FIXTURES (tests/faults/endpoint.py):
no real broker can be made to answer 100 MB or redirect on demand; pulsar-lite has no admin API."""

from __future__ import annotations

import time

import pytest

from tests.faults.endpoint import Endpoint
from tests.helpers import collect_once, make_check
from tests.pulsar.admin_fixture import topic_stats_json

GOOD = b'pulsar_in_messages_total{topic="orders",partition="-1",namespace="public/default"} 7\n'


@pytest.fixture
def endpoint():
    ep = Endpoint()
    yield ep
    ep.stop()


def metrics_check(ep, **extra):
    return {"kind": "pulsar", "name": "bounded", "metrics_url": [ep.url("/metrics")], "request_timeout": "2s", **extra}


@pytest.mark.parametrize("mode", [("ok", b"x" * 300_000), ("huge", 100_000_000), ("gzip_bomb", 50_000_000)],
                         ids=["declared-length", "100MB-chunked", "gzip-bomb"])
def test_metrics_reply_over_the_cap_is_too_large_never_a_partial_parse(endpoint, mode):
    endpoint.modes["/metrics"] = mode
    t0 = time.monotonic()
    snap = collect_once(metrics_check(endpoint, max_metrics_bytes=200_000))
    assert time.monotonic() - t0 < 2.0  # stopped at the cap, not after reading 100 MB
    assert not snap.ok and ("too_large" in {r for r, _ in snap.errors})
    assert "larger than 200000 bytes" in snap.error and "max_metrics_bytes" in snap.error
    assert snap.samples("mqwatch_queue_produced_total") == []


def test_metrics_reply_under_the_cap_is_read(endpoint):
    body = GOOD + b"#" * (2048 - len(GOOD) - 1) + b"\n"  # exactly at the cap
    endpoint.modes["/metrics"] = ("ok", body)
    snap = collect_once(metrics_check(endpoint, max_metrics_bytes=len(body)))
    assert snap.ok and snap.value("mqwatch_queue_produced_total", queue="persistent://public/default/orders") == 7


def test_a_reply_dripping_slower_than_the_request_timeout_times_out(endpoint):
    endpoint.modes["/metrics"] = ("drip", GOOD * 100, 10.0)
    t0 = time.monotonic()
    snap = collect_once(metrics_check(endpoint, request_timeout="1s"))
    assert time.monotonic() - t0 < 3.0
    assert not snap.ok and snap.errors[0][0] == "timeout" and "not complete within 1s" in snap.error


def test_admin_json_over_the_cap_is_too_large(endpoint):
    endpoint.modes["/admin/v2/tenants"] = ("ok", b'["' + b"t" * 5000 + b'"]')
    snap = collect_once({"kind": "pulsar", "name": "bounded", "admin_url": endpoint.url(), "max_admin_bytes": 4096})
    assert not snap.ok and snap.errors[-1][0] == "too_large" and "max_admin_bytes" in snap.error


def admin_cluster(ep: Endpoint, brokers: list[str]) -> None:
    import json

    ns = "/admin/v2/persistent/public/default"
    for path, doc in {
        "/admin/v2/tenants": ["public"], "/admin/v2/namespaces/public": ["public/default"],
        ns: ["persistent://public/default/orders"], ns + "/partitioned": [],
        "/admin/v2/non-persistent/public/default": [], "/admin/v2/non-persistent/public/default/partitioned": [],
        "/admin/v2/clusters": ["standalone"], "/admin/v2/brokers/standalone": brokers,
    }.items():
        ep.modes[path] = ("ok", json.dumps(doc).encode())
    ep.modes["/admin/v2/brokers/health"] = ("ok", b"ok")


def test_token_goes_only_to_configured_hosts_not_to_redirects_or_listed_brokers():
    configured, other = Endpoint(), Endpoint()
    try:
        admin_cluster(configured, [configured.address, other.address])
        # Real Pulsar answers 307 to the broker owning a topic; that broker was not configured.
        configured.modes["/admin/v2/persistent/public/default/orders/stats"] = (
            "redirect", other.url("/admin/v2/persistent/public/default/orders/stats"))
        import json
        other.modes["/admin/v2/persistent/public/default/orders/stats"] = ("ok", json.dumps(topic_stats_json(5, 10, {})).encode())
        other.modes["/admin/v2/brokers/health"] = ("status", 401, b'{"reason": "token required"}')
        check = {"kind": "pulsar", "name": "tok", "admin_url": configured.url(), "auth": {"token": "s3cr3t-jwt"}}
        snap = collect_once(check)
        assert snap.ok, snap.error
        assert snap.value("mqwatch_queue_produced_total", queue="persistent://public/default/orders") == 5
        assert {a for _, a in configured.seen} == {"Bearer s3cr3t-jwt"}
        assert other.seen and {a for _, a in other.seen} == {""}, "the token leaked to an unconfigured host"
        # The listed broker that wants the token is not judged unhealthy, and the fix is named.
        assert snap.value("mqwatch_pulsar_broker_healthy", broker=other.address) is None
        assert any(r == "auth" and "auth.allowed_hosts" in m for r, m in snap.errors)

        other.seen.clear()
        other.modes["/admin/v2/brokers/health"] = ("ok", b"ok")
        _, allowed = make_check({**check, "auth": {"token": "s3cr3t-jwt", "allowed_hosts": [other.address]}})
        snap = collect_once(allowed)
        allowed.close()
        assert {a for _, a in other.seen} == {"Bearer s3cr3t-jwt"}
        assert snap.value("mqwatch_pulsar_broker_healthy", broker=other.address) == 1
    finally:
        configured.stop()
        other.stop()
