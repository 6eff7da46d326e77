"""Flow signals of stream groups on a real Redis 7: consumed, produced, drain, trimmed-unread, poison messages."""

from __future__ import annotations

import math
import time

from tests.helpers import make_check, collect_once

Q = {"queue": "stream:orders"}


def _run(db, **options):
    _, check = make_check(db.check(keys=["stream:*"], frameworks=[], **options))

    def collect():
        snap = collect_once(check)
        assert snap.ok, snap.error
        return snap

    return collect


def _lost(snap, group="billing"):
    return snap.value("mqwatch_consumer_lost_messages_total", consumer=group, **Q)


def test_stream_trimmed_under_an_unread_group_counts_exactly_what_the_group_lost(db):
    for i in range(10):
        db.r.xadd("stream:orders", {"n": i})
    db.r.xgroup_create("stream:orders", "billing", id="0")
    db.r.xgroup_create("stream:orders", "audit", id="$")  # caught up before the trim: loses nothing
    db.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=2)
    collect = _run(db)
    assert _lost(collect()) == 0
    db.r.xtrim("stream:orders", maxlen=3, approximate=False)  # entries 3..7 were never read by billing
    snap = collect()
    assert _lost(snap) == 5
    assert _lost(snap, "audit") == 0
    for i in range(5):
        db.r.xadd("stream:orders", {"n": 10 + i})
    db.r.xtrim("stream:orders", maxlen=3, approximate=False)
    assert _lost(collect()) == 10
    # the group now reads what is left: the count of what it lost stays
    db.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=10)
    assert _lost(collect()) == 10


def test_entry_claimed_again_and_again_gives_its_exact_delivery_count(db):
    ids = [db.r.xadd("stream:orders", {"n": i}) for i in range(3)]
    db.r.xgroup_create("stream:orders", "billing", id="0")
    db.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=3)  # each delivered once
    db.r.xack("stream:orders", "billing", ids[2])
    for worker in ("w2", "w3", "w2", "w4"):  # a crash loop: each worker claims it, fails, dies
        db.r.xclaim("stream:orders", "billing", worker, min_idle_time=0, message_ids=[ids[0]])
    snap = _run(db)()
    assert snap.value("mqwatch_pending_max_deliveries", consumer="billing", **Q) == 5
    assert snap.value("mqwatch_pending_redelivered_messages", consumer="billing", **Q) == 1
    db.r.xack("stream:orders", "billing", ids[0], ids[1])
    snap = _run(db)()
    assert snap.value("mqwatch_pending_max_deliveries", consumer="billing", **Q) == 0
    assert snap.value("mqwatch_pending_redelivered_messages", consumer="billing", **Q) == 0


def test_pending_scan_bounds_the_entries_read_and_zero_turns_it_off(db):
    ids = [db.r.xadd("stream:orders", {"n": i}) for i in range(5)]
    db.r.xgroup_create("stream:orders", "billing", id="0")
    db.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=5)
    db.r.xclaim("stream:orders", "billing", "w2", min_idle_time=0, message_ids=[ids[4]])  # newest: beyond the scan
    snap = _run(db, pending_scan=2)()
    assert snap.value("mqwatch_pending_max_deliveries", consumer="billing", **Q) == 1
    snap = _run(db, pending_scan=0)()
    assert snap.value("mqwatch_pending_max_deliveries", consumer="billing", **Q) is None


def test_consumed_follows_entries_read_produced_survives_recreation_and_drain_is_estimated(db):
    for i in range(10):
        db.r.xadd("stream:orders", {"n": i})
    db.r.xgroup_create("stream:orders", "billing", id="0")
    db.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=2)
    collect = _run(db)
    snap = collect()
    assert snap.value("mqwatch_consumer_consumed_total", consumer="billing", **Q) == 2
    assert snap.value("mqwatch_consumer_drain_seconds", consumer="billing", **Q) is None  # one point: no rate yet
    time.sleep(0.2)
    db.r.xreadgroup("billing", "w1", {"stream:orders": ">"}, count=4)
    snap = collect()
    assert snap.value("mqwatch_consumer_consumed_total", consumer="billing", **Q) == 6
    drain = snap.value("mqwatch_consumer_drain_seconds", consumer="billing", **Q)
    assert 0 < drain < math.inf  # 4 left, gaining 4 per ~0.2 s
    time.sleep(0.2)
    db.r.xadd("stream:orders", {"n": 99})  # produced, nothing consumed: not gaining
    snap = collect()
    assert snap.value("mqwatch_consumer_drain_seconds", consumer="billing", **Q) > drain
    assert snap.value("mqwatch_queue_produced_total", **Q) == 11
    db.r.delete("stream:orders")  # recreated: entries-added restarts at 0 and must not lower the counter
    for i in range(3):
        db.r.xadd("stream:orders", {"n": i})
    snap = collect()
    assert snap.value("mqwatch_queue_produced_total", **Q) == 14
