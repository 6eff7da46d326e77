"""Job frameworks, their data written exactly as each framework writes it (sources cited per test)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import zlib

import pytest

from tests.helpers import collect_once


def _sidekiq_job(queue, enqueued_at, **extra):
    # Shape of Sidekiq::Client#raw_push (sidekiq/sidekiq lib/sidekiq/client.rb); enqueued_at is
    # Integer milliseconds since Sidekiq 8, a Float of seconds before (lib/sidekiq/api.rb #latency).
    return json.dumps({"retry": True, "queue": queue, "class": "HardWorker", "args": [1],
                       "jid": "b4a577edbccf1d805744efa9", "created_at": enqueued_at, "enqueued_at": enqueued_at, **extra})


def test_sidekiq_queues_latency_schedule_retry_and_dead_set(db):
    now = time.time()
    r = db.r
    r.sadd("queues", "default", "mailers")
    # Sidekiq LPUSHes, so the oldest job is at the right end (LINDEX -1).
    r.lpush("queue:default", _sidekiq_job("default", int((now - 90) * 1000)), _sidekiq_job("default", int(now * 1000)))
    r.lpush("queue:mailers", _sidekiq_job("mailers", now - 30.5))  # Sidekiq 7 float seconds
    r.zadd("schedule", {_sidekiq_job("default", None): now - 45, _sidekiq_job("mailers", None): now + 600})
    r.zadd("retry", {_sidekiq_job("default", None, retry_count=1): now + 30})
    # DeadSet#kill: ZADD dead <now as float> <job json with error_class/error_message>
    r.zadd("dead", {
        _sidekiq_job("default", None, error_class="Net::ReadTimeout", error_message="x", failed_at=now - 20): now - 20,
        _sidekiq_job("mailers", None, error_class="Net::ReadTimeout", error_message="y", failed_at=now - 10): now - 10,
        _sidekiq_job("mailers", None, error_class="ArgumentError", error_message="z", failed_at=now - 5): now - 5,
    })
    check = db.check(frameworks=["sidekiq"], keys=[])
    snap = collect_once(check)
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue="default") == 2
    assert snap.value("mqwatch_redis_queue_latency_seconds", queue="default") == pytest.approx(90, abs=3)
    assert snap.value("mqwatch_redis_queue_latency_seconds", queue="mailers") == pytest.approx(30.5, abs=3)
    assert snap.value("mqwatch_redis_queue_framework", queue="default", framework="sidekiq") == 1
    assert snap.value("mqwatch_delayed_messages", queue="schedule") == 2
    assert snap.value("mqwatch_delayed_overdue_messages", queue="schedule") == 1
    assert snap.value("mqwatch_delayed_overdue_seconds", queue="schedule") == pytest.approx(45, abs=3)
    assert snap.value("mqwatch_delayed_overdue_messages", queue="retry") == 0
    # The depth is split by each dead job's queue, like the arrivals.
    assert snap.value("mqwatch_dlq_messages", dlq="dead", source="mailers") == 2
    assert snap.value("mqwatch_dlq_messages", dlq="dead", source="default") == 1
    assert snap.value("mqwatch_dlq_messages", dlq="dead", source="") is None
    assert snap.value("mqwatch_dlq_messages_total", dlq="dead", source="mailers") == 2
    assert snap.value("mqwatch_dlq_messages_total", dlq="dead", source="default") == 1
    assert snap.value("mqwatch_dlq_reason_messages", dlq="dead", reason="Net::ReadTimeout") == 2
    assert snap.value("mqwatch_dlq_reason_messages", dlq="dead", reason="ArgumentError") == 1
    assert snap.value("mqwatch_dlq_last_message_timestamp_seconds", dlq="dead", source="mailers") == pytest.approx(
        now - 5, abs=0.01)
    assert snap.value("mqwatch_dlq_last_message_timestamp_seconds", dlq="dead", source="default") == pytest.approx(
        now - 20, abs=0.01)


def test_sidekiq_dead_arrivals_stay_monotonic_when_jobs_are_removed(db):
    from tests.helpers import make_check
    from mqwatch.agent.scheduler import Collector

    now = time.time()
    r = db.r
    r.sadd("queues", "default")
    old = [_sidekiq_job("default", None, error_class="E", jid=str(i)) for i in range(3)]
    r.zadd("dead", {j: now - 100 + i for i, j in enumerate(old)})
    _, check = make_check(db.check(frameworks=["sidekiq"], keys=[]))
    first = Collector(check, 5).collect()
    assert first.value("mqwatch_dlq_messages_total", dlq="dead", source="default") == 3
    r.zrem("dead", *old[:2])  # someone retried two dead jobs from the Web UI
    r.zadd("dead", {_sidekiq_job("default", None, error_class="E", jid="new"): now})
    second = Collector(check, 5).collect()
    assert second.value("mqwatch_dlq_messages", dlq="dead", source="default") == 2
    assert second.value("mqwatch_dlq_messages_total", dlq="dead", source="default") == 4
    third = Collector(check, 5).collect()  # unchanged: the split of the last cycle is reused
    assert third.value("mqwatch_dlq_messages_total", dlq="dead", source="default") == 4
    assert third.value("mqwatch_dlq_messages", dlq="dead", source="default") == 2
    r.zadd("dead", {_sidekiq_job("mailers", None, error_class="E", jid="m1"): now + 1})
    r.zrem("dead", old[2])  # same size, but a job of another queue replaced one: read again
    fourth = Collector(check, 5).collect()
    assert fourth.value("mqwatch_dlq_messages", dlq="dead", source="default") == 1
    assert fourth.value("mqwatch_dlq_messages", dlq="dead", source="mailers") == 1


def test_sidekiq_malformed_job_json_is_reported_and_collection_goes_on(db):
    now = time.time()
    db.r.sadd("queues", "default")
    db.r.lpush("queue:default", b"{not json")
    db.r.zadd("dead", {b"\xff\xfe garbage": now, _sidekiq_job("default", None, error_class="KeyError"): now - 1})
    snap = collect_once(db.check(frameworks=["sidekiq"], keys=[]))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue="default") == 1
    assert snap.value("mqwatch_dlq_reason_messages", dlq="dead", reason="unknown") == 1
    assert snap.value("mqwatch_dlq_reason_messages", dlq="dead", reason="KeyError") == 1
    reasons = [r for r, _ in snap.errors]
    assert reasons.count("bad_payload") == 2, snap.errors


def _rq_time(t):
    # rq/utils.py utcformat: '%Y-%m-%dT%H:%M:%S.%fZ'
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_rq_queue_registries_and_failed_jobs(db):
    now = time.time()
    r = db.r
    # rq/queue.py: SADD rq:queues rq:queue:<name>; RPUSH rq:queue:<name> <job id>; job HASH rq:job:<id>.
    r.sadd("rq:queues", "rq:queue:default")
    for i, age in enumerate((300, 10)):
        r.hset(f"rq:job:j{i}", mapping={"status": "queued", "origin": "default", "enqueued_at": _rq_time(now - age),
                                         "created_at": _rq_time(now - age)})
        r.rpush("rq:queue:default", f"j{i}")
    # StartedJobRegistry rq:wip:<name> and ScheduledJobRegistry rq:scheduled:<name> (score = run time).
    r.zadd("rq:wip:default", {"w1": now + 180})
    r.zadd("rq:scheduled:default", {"s1": now - 15, "s2": now + 60})
    # FailedJobRegistry: score = now + failure_ttl (default 1 year); exc_info zlib-compressed
    # in the job hash (rq/job.py to_dict), or only in the rq:results:<id> stream (rq/results.py).
    ttl = 365 * 24 * 3600
    tb = "Traceback (most recent call last):\n  File \"x.py\", line 1\nZeroDivisionError: division by zero\n"
    r.hset("rq:job:f1", mapping={"status": "failed", "exc_info": zlib.compress(tb.encode()),
                                 "ended_at": _rq_time(now - 50)})
    r.hset("rq:job:f2", mapping={"status": "failed", "ended_at": _rq_time(now - 20)})
    r.xadd("rq:results:f2", {"type": 2, "exc_string": base64.b64encode(zlib.compress(
        b"Traceback...\nrequests.exceptions.ConnectionError: refused")).decode()})
    r.zadd("rq:failed:default", {"f1": now - 50 + ttl, "f2": now - 20 + ttl})
    snap = collect_once(db.check(frameworks=["rq"], keys=[]))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue="default") == 2
    assert snap.value("mqwatch_redis_queue_latency_seconds", queue="default") == pytest.approx(300, abs=3)
    assert snap.value("mqwatch_pending_messages", queue="default") == 1
    assert snap.value("mqwatch_delayed_messages", queue="default") == 2
    assert snap.value("mqwatch_delayed_overdue_seconds", queue="default") == pytest.approx(15, abs=3)
    dlq = {"dlq": "rq:failed:default"}
    assert snap.value("mqwatch_dlq_messages", source="default", **dlq) == 2
    assert snap.value("mqwatch_dlq_messages_total", source="default", **dlq) == 2
    assert snap.value("mqwatch_dlq_reason_messages", reason="ZeroDivisionError", **dlq) == 1
    assert snap.value("mqwatch_dlq_reason_messages", reason="requests.exceptions.ConnectionError", **dlq) == 1
    # The score is an expiry, not a failure time: the timestamp comes from the job's ended_at.
    assert snap.value("mqwatch_dlq_last_message_timestamp_seconds", source="default", **dlq) == pytest.approx(now - 20, abs=1)


def test_bullmq_lists_delayed_encoding_and_failed_reasons(db):
    now_ms = int(time.time() * 1000)
    r = db.r
    base = "bull:emails:"
    # Queue keys: taskforcesh/bullmq src/classes/queue-keys.ts; addStandardJob.lua LPUSHes to wait.
    r.hset(base + "meta", mapping={"opts.maxLenEvents": 10000})
    r.set(base + "id", 7)
    for jid, age_ms in (("1", 120_000), ("2", 1_000)):
        r.hset(base + jid, mapping={"name": "send", "data": "{}", "opts": "{}", "timestamp": now_ms - age_ms})
        r.lpush(base + "wait", jid)
    r.lpush(base + "active", "3")
    r.zadd(base + "prioritized", {"4": 1})
    # includes/getDelayedScore.lua: score = due_ms * 0x1000 + (job counter & 0xfff)
    r.zadd(base + "delayed", {"5": (now_ms - 25_000) * 0x1000 + 5, "6": (now_ms + 60_000) * 0x1000 + 6})
    # moveToFinished.lua: ZADD failed <finishedOn ms> <id>; HSET job failedReason
    r.hset(base + "8", mapping={"failedReason": "connect ECONNREFUSED", "finishedOn": now_ms - 4000})
    r.hset(base + "9", mapping={"failedReason": "connect ECONNREFUSED", "finishedOn": now_ms - 2000})
    r.zadd(base + "failed", {"8": now_ms - 4000, "9": now_ms - 2000})
    # BullMQ stores only the message (failedReason): shown with `reasons: message`.
    snap = collect_once(db.check(frameworks=["bullmq"], keys=["bull:*"], reasons="message"))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue="emails") == 3
    assert snap.value("mqwatch_redis_queue_latency_seconds", queue="emails") == pytest.approx(120, abs=3)
    assert snap.value("mqwatch_pending_messages", queue="emails") == 1
    assert snap.value("mqwatch_delayed_messages", queue="emails") == 2
    assert snap.value("mqwatch_delayed_overdue_messages", queue="emails") == 1
    assert snap.value("mqwatch_delayed_overdue_seconds", queue="emails") == pytest.approx(25, abs=3)
    dlq = {"dlq": "bull:emails:failed"}
    assert snap.value("mqwatch_dlq_messages", source="emails", **dlq) == 2
    assert snap.value("mqwatch_dlq_reason_messages", reason="connect ECONNREFUSED", **dlq) == 2
    assert snap.value("mqwatch_dlq_last_message_timestamp_seconds", source="emails", **dlq) == pytest.approx(
        (now_ms - 2000) / 1000, abs=0.01)
    # keys the framework owns are not reported a second time as plain keys
    assert snap.value("mqwatch_queue_messages", queue="bull:emails:wait") is None


def test_celery_queues_priorities_and_unacked(db):
    now = time.time()
    r = db.r
    sep = b"\x06\x16"
    # kombu/transport/redis.py: _queue_bind SADDs '_kombu.binding.<exchange>' <rk SEP pattern SEP queue>;
    # _put LPUSHes to <queue> or <queue SEP priority>; QoS.append ZADDs unacked_index and HSETs unacked.
    r.sadd("_kombu.binding.celery", sep.join([b"celery", b"", b"celery"]))
    r.sadd("_kombu.binding.reports", sep.join([b"reports", b"", b"reports"]))
    r.sadd("_kombu.binding.celery.pidbox", sep.join([b"", b"", b"host.celery.pidbox"]))
    msg = json.dumps({"body": "e30=", "headers": {"task": "t", "id": "1"}, "properties": {"delivery_tag": "t1"}})
    r.lpush("celery", msg, msg)
    r.lpush(b"celery" + sep + b"3", msg)
    r.lpush("reports", msg)
    r.hset("unacked", "t1", json.dumps([json.loads(msg), "", "celery"]))
    r.hset("unacked", "t2", json.dumps([json.loads(msg), "", "celery"]))
    r.zadd("unacked_index", {"t1": now - 70, "t2": now - 5})
    snap = collect_once(db.check(frameworks=["celery"], keys=[]))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue="celery") == 3
    assert snap.value("mqwatch_queue_messages", queue="reports") == 1
    assert snap.value("mqwatch_queue_messages", queue="host.celery.pidbox") is None
    assert snap.value("mqwatch_pending_messages", queue="unacked") == 2
    assert snap.value("mqwatch_pending_oldest_seconds", queue="unacked") == pytest.approx(70, abs=3)


def test_frameworks_absent_produce_no_series(db):
    snap = collect_once(db.check(keys=[]))
    assert snap.ok, snap.error
    assert snap.samples("mqwatch_queue_messages") == []
    assert snap.samples("mqwatch_dlq_messages") == []
