"""Plain Redis structures matched by `keys`: lists, due-time sorted sets, streams with groups."""

from __future__ import annotations

import time

import pytest

from mqwatch.checks.redis.streams import known_lag
from tests.helpers import collect_once


def test_list_queue_and_its_processing_list(db):
    db.r.lpush("jobs:emails", *[f"m{i}" for i in range(3)])
    db.r.lpush("jobs:emails:processing", "m9", "m8")
    snap = collect_once(db.check(keys=["jobs:*"], frameworks=[]))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue="jobs:emails") == 3
    assert snap.value("mqwatch_pending_messages", queue="jobs:emails") == 2
    assert snap.value("mqwatch_queue_messages", queue="jobs:emails:processing") is None


@pytest.mark.parametrize("unit, scale", [("seconds", 1), ("milliseconds", 1000)])
def test_delayed_queue_overdue_entries_of_known_age(db, unit, scale):
    now = time.time()
    dues = {"late-120": now - 120, "late-30": now - 30, "soon": now + 60, "later": now + 600, "tomorrow": now + 86400}
    db.r.zadd("delay:orders", {k: v * scale for k, v in dues.items()})
    for mode in (unit, "auto"):
        snap = collect_once(db.check(keys=["delay:*"], delayed_score=mode, frameworks=[]))
        assert snap.value("mqwatch_delayed_messages", queue="delay:orders") == 5
        assert snap.value("mqwatch_delayed_overdue_messages", queue="delay:orders") == 2
        assert snap.value("mqwatch_delayed_overdue_seconds", queue="delay:orders") == pytest.approx(120, abs=3)


def test_delayed_queue_with_nothing_due_is_not_overdue(db):
    db.r.zadd("delay:ok", {"a": time.time() + 30})
    snap = collect_once(db.check(keys=["delay:*"], frameworks=[]))
    assert snap.value("mqwatch_delayed_overdue_messages", queue="delay:ok") == 0
    assert snap.value("mqwatch_delayed_overdue_seconds", queue="delay:ok") == 0


def _stream_with_known_ids(r, key, ages):
    now_ms = int(time.time() * 1000)
    ids = [f"{now_ms - a * 1000}-0" for a in ages]
    for i in ids:
        r.xadd(key, {"order": i}, id=i)
    return ids


def test_stream_group_lag_pending_and_ages(db):
    ids = _stream_with_known_ids(db.r, "stream:orders", [100, 80, 60, 40, 20])
    db.r.xgroup_create("stream:orders", "billing", id="0")
    db.r.xreadgroup("billing", "worker-1", {"stream:orders": ">"}, count=3)
    db.r.xack("stream:orders", "billing", ids[0])  # ids[1], ids[2] stay pending
    db.r.xgroup_create("stream:orders", "audit", id="$")  # caught up
    snap = collect_once(db.check(keys=["stream:*"], frameworks=[]))
    assert snap.ok, snap.error
    q = {"queue": "stream:orders"}
    assert snap.value("mqwatch_queue_messages", **q) == 5
    assert snap.value("mqwatch_queue_produced_total", **q) == 5
    assert snap.value("mqwatch_consumer_lag_messages", consumer="billing", **q) == 2
    assert snap.value("mqwatch_consumer_lag_seconds", consumer="billing", **q) == pytest.approx(40, abs=3)
    assert snap.value("mqwatch_pending_messages", consumer="billing", **q) == 2
    assert snap.value("mqwatch_pending_oldest_seconds", consumer="billing", **q) == pytest.approx(80, abs=3)
    assert snap.value("mqwatch_consumer_members", consumer="billing", **q) == 1
    assert snap.value("mqwatch_consumer_idle_seconds", consumer="billing", **q) < 30
    assert snap.value("mqwatch_consumer_lag_messages", consumer="audit", **q) == 0
    assert snap.value("mqwatch_consumer_lag_seconds", consumer="audit", **q) == 0
    assert snap.value("mqwatch_consumer_members", consumer="audit", **q) == 0


def test_stream_lag_when_redis_reports_it_as_nil(db):
    ids = _stream_with_known_ids(db.r, "stream:nil", [50, 40, 30, 20, 10])
    db.r.xgroup_create("stream:nil", "g", id="0")
    db.r.xreadgroup("g", "c", {"stream:nil": ">"}, count=2)
    db.r.xdel("stream:nil", ids[3])  # a deletion after the group's position: Redis 7 gives up on lag
    assert db.r.xinfo_groups("stream:nil")[0]["lag"] is None
    snap = collect_once(db.check(keys=["stream:*"], frameworks=[]))
    assert snap.value("mqwatch_consumer_lag_messages", queue="stream:nil", consumer="g") == 2  # ids[2], ids[4]


def test_known_lag_on_redis_6_replies_without_lag():
    # XINFO STREAM/GROUPS as Redis 6.2 shapes them: no entries-read, no lag.
    info = {"length": 3, "last-generated-id": b"300-0", "first-entry": (b"100-0", {})}
    assert known_lag(info, {"last-delivered-id": b"300-0"}) == 0
    assert known_lag(info, {"last-delivered-id": b"0-0"}) == 3
    assert known_lag(info, {"last-delivered-id": b"200-0"}) is None  # only counting can tell
    assert known_lag({"length": 0, "last-generated-id": b"300-0"}, {"last-delivered-id": b"100-0"}) == 0


def test_non_utf8_key_names_become_escaped_labels(db):
    db.r.lpush(b"jobs:\xff\xfe", "x")
    snap = collect_once(db.check(keys=["jobs:*"], frameworks=[]))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue="jobs:\\xff\\xfe") == 1


def test_key_budget_exceeded_is_reported(db):
    for i in range(30):
        db.r.lpush(f"jobs:{i}", "x")
    snap = collect_once(db.check(keys=["jobs:*"], frameworks=[], max_keys=10, scan_count=10))
    assert snap.ok
    assert snap.value("mqwatch_redis_key_budget_exceeded") == 1
    assert snap.value("mqwatch_redis_keys_scanned") == 10
    assert len(snap.samples("mqwatch_queue_messages")) == 10
    assert any(reason == "key_budget" and "max_keys=10" in msg for reason, msg in snap.errors)
    ok = collect_once(db.check(keys=["jobs:*"], frameworks=[], max_keys=100))
    assert ok.value("mqwatch_redis_key_budget_exceeded") == 0
    assert ok.value("mqwatch_redis_keys_scanned") == 30


def test_stream_group_status_stopped_when_nobody_consumes(db):
    _stream_with_known_ids(db.r, "stream:idle", [30, 20, 10])
    db.r.xgroup_create("stream:idle", "orphaned", id="0")  # never read: no consumer, lag 3
    db.r.xgroup_create("stream:idle", "done", id="$")
    snap = collect_once(db.check(keys=["stream:*"], frameworks=[]))
    labels = {"queue": "stream:idle"}
    assert snap.value("mqwatch_consumer_status", consumer="orphaned", status="stopped", **labels) == 1
    assert snap.value("mqwatch_consumer_status", consumer="orphaned", status="ok", **labels) == 0
    assert snap.value("mqwatch_consumer_status", consumer="done", status="ok", **labels) == 1
