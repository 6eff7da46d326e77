"""Generic DLQ keys, keys changing under the scan, bad credentials, and server health."""

from __future__ import annotations

import json
import time

import pytest

from mqwatch.agent.scheduler import Collector
from mqwatch.checks.redis.client import RedisClient
from mqwatch.checks.redis.embedded import start_redis
from tests.helpers import collect_once, make_check


def test_zset_dlq_arrivals_reasons_source_and_vanishing(db):
    now = time.time()
    db.r.zadd("orders:dead", {json.dumps({"id": i, "error": "Timeout" if i % 2 else "BadRequest"}): now - 10 + i
                              for i in range(4)})
    _, check = make_check(db.check(keys=[], dlq_keys=["*:dead"], frameworks=[]))
    snap = Collector(check, 5).collect()
    assert snap.ok, snap.error
    labels = {"dlq": "orders:dead", "source": "orders"}
    assert snap.value("mqwatch_dlq_messages", **labels) == 4
    assert snap.value("mqwatch_dlq_messages_total", **labels) == 4
    assert snap.value("mqwatch_dlq_last_message_timestamp_seconds", **labels) == pytest.approx(now - 7, abs=0.01)
    assert snap.value("mqwatch_dlq_reason_messages", dlq="orders:dead", reason="Timeout") == 2
    db.r.zpopmin("orders:dead", 3)  # an operator replays three
    db.r.zadd("orders:dead", {"not json \xff": now})
    snap = Collector(check, 5).collect()
    assert snap.value("mqwatch_dlq_messages", **labels) == 2
    assert snap.value("mqwatch_dlq_messages_total", **labels) == 5
    assert snap.value("mqwatch_dlq_reason_messages", dlq="orders:dead", reason="unknown") == 1
    db.r.delete("orders:dead")
    snap = Collector(check, 5).collect()
    assert snap.samples("mqwatch_dlq_messages") == [] and snap.samples("mqwatch_dlq_messages_total") == []


def test_list_and_stream_dlqs(db):
    db.r.lpush("payments:dlq", json.dumps({"reason": "card_declined"}), json.dumps({"reason": "card_declined"}))
    db.r.xadd("refunds:dlq", {"reason": "expired", "payload": "{}"})
    _, check = make_check(db.check(keys=[], frameworks=[]))
    snap = Collector(check, 5).collect()
    assert snap.value("mqwatch_dlq_messages", dlq="payments:dlq", source="payments") == 2
    assert snap.value("mqwatch_dlq_reason_messages", dlq="payments:dlq", reason="card_declined") == 2
    assert snap.value("mqwatch_dlq_messages", dlq="refunds:dlq", source="refunds") == 1
    assert snap.value("mqwatch_dlq_messages_total", dlq="refunds:dlq", source="refunds") == 1
    assert snap.value("mqwatch_dlq_reason_messages", dlq="refunds:dlq", reason="expired") == 1
    db.r.rpop("payments:dlq")
    db.r.lpush("payments:dlq", json.dumps({"reason": "fraud"}))
    db.r.xadd("refunds:dlq", {"reason": "expired"})
    snap = Collector(check, 5).collect()
    # A list only shows its length: one out, one in between cycles is no growth, so no arrival
    # (documented limit of list DLQs); the stream counts entries added exactly.
    assert snap.value("mqwatch_dlq_messages_total", dlq="payments:dlq", source="payments") == 2
    assert snap.value("mqwatch_dlq_messages_total", dlq="refunds:dlq", source="refunds") == 2


class _ChangingClient(RedisClient):
    """Runs `between` after the scan and the TYPE round, before the first read of jobs:flip: another
    client writing mid-cycle."""

    between = None

    def batch(self, calls):
        if self.between and any(len(c) > 1 and c[0] != "type" and c[1] == b"jobs:flip" for c in calls):
            self.between()
            self.between = None
        return super().batch(calls)


def test_keys_that_change_type_or_vanish_mid_cycle(db):
    db.r.lpush("jobs:flip", "a")
    db.r.lpush("jobs:gone", "a")
    db.r.zadd("jobs:zgone", {"a": 1})
    db.r.lpush("jobs:stable", "a", "b")
    _, check = make_check(db.check(keys=["jobs:*"], frameworks=[]))
    o = check.options
    check._client = _ChangingClient(o.url, o.username, o.password, check.timeout)

    def writer():
        db.r.delete("jobs:flip")
        db.r.hset("jobs:flip", "now", "a hash")
        db.r.delete("jobs:gone", "jobs:zgone")

    check._client.between = writer
    snap = Collector(check, 5).collect()
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue="jobs:stable") == 2
    assert snap.value("mqwatch_queue_messages", queue="jobs:flip") is None
    assert snap.value("mqwatch_queue_messages", queue="jobs:gone") == 0  # LLEN of a vanished key is 0
    assert snap.value("mqwatch_delayed_messages", queue="jobs:zgone") == 0
    assert [r for r, _ in snap.errors] == ["key_changed"] and "jobs:flip" in snap.errors[0][1]


def test_wrong_password_is_a_clear_auth_error_without_the_secret(tmp_path, caplog):
    server = start_redis(password="s3cret-right")
    secret_file = tmp_path / "redis-password"
    secret_file.write_text("s3cret-right\n")
    try:
        url = f"redis://127.0.0.1:{server.port}/0"
        snap = collect_once({"kind": "redis", "name": "locked", "url": url, "password": "wrong-pass-123"})
        assert not snap.ok
        assert snap.errors[0][0] == "auth"
        assert "authentication failed" in snap.error and "wrong-pass-123" not in snap.error
        good = collect_once({"kind": "redis", "name": "locked", "url": url, "password_file": str(secret_file),
                             "keys": []})
        assert good.ok, good.error
        assert "wrong-pass-123" not in caplog.text and "s3cret-right" not in caplog.text
    finally:
        server.stop()


def test_server_down_is_a_connection_error(redis_server):
    from mqwatch.agent.embedded import free_port
    snap = collect_once({"kind": "redis", "name": "down", "url": f"redis://127.0.0.1:{free_port()}/0", "timeout": "2s"})
    assert not snap.ok and snap.errors[0][0] == "connection"


def test_server_health_from_info(db):
    db.r.config_set("maxmemory", 512 * 1024 * 1024)
    try:
        snap = collect_once(db.check(keys=[], frameworks=[]))
    finally:
        db.r.config_set("maxmemory", 0)
    used = snap.value("mqwatch_redis_used_memory_bytes")
    assert used > 100_000
    assert snap.value("mqwatch_redis_memory_used_ratio") == pytest.approx(used / (512 * 1024 * 1024), rel=0.05)
    assert snap.value("mqwatch_redis_replication_role", role="master") == 1
    assert snap.value("mqwatch_redis_replication_role", role="replica") == 0
    assert snap.value("mqwatch_redis_rdb_last_bgsave_ok") == 1
    assert snap.value("mqwatch_redis_connected_clients") >= 2
    assert snap.value("mqwatch_redis_uptime_seconds") >= 0
    assert snap.value("mqwatch_redis_aof_last_write_ok") is None  # AOF is off on the fixture
    assert snap.value("mqwatch_redis_master_link_up") is None  # only replicas have a master link


def test_config_errors_name_the_key():
    from mqwatch.agent.config import parse_config
    from mqwatch.agent.schema import ConfigErrors
    import yaml

    doc = {"checks": [{"kind": "redis", "name": "c", "url": "http://x", "delayed_score": "minutes",
                       "frameworks": ["sidekik"], "max_key": 5}]}
    with pytest.raises(ConfigErrors) as e:
        parse_config(yaml.safe_dump(doc), "m.yaml")
    text = str(e.value)
    for fragment in ("checks[0].url", "checks[0].delayed_score", "checks[0].frameworks[0]", "did you mean max_keys"):
        assert fragment in text, text


def test_server_that_never_answers_fails_within_the_timeout():
    server = start_redis()
    try:
        server.pause()  # the port accepts connections, nothing answers
        t0 = time.monotonic()
        snap = collect_once({"kind": "redis", "name": "frozen", "url": f"redis://127.0.0.1:{server.port}/0",
                             "timeout": "2s"})
        assert time.monotonic() - t0 < 3.5
        assert not snap.ok and snap.errors[0][0] == "timeout"
    finally:
        server.resume()
        server.stop()
