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


def _canary(snap):
    return tuple(snap.value(f"mqwatch_canary_{k}_messages_total") for k in ("lost", "duplicated", "reordered"))


def test_stream_canary_round_trips_and_counts_a_replay_as_duplicated(db):
    _, check = make_check(db.check(keys=["stream:*"], frameworks=[], canary={"enabled": True, "key": "mqwatch:canary"}))
    snap = collect_once(check)
    assert snap.ok, snap.error
    assert snap.value("mqwatch_canary_roundtrip_seconds").count == 1
    assert _canary(snap) == (0, 0, 0)
    assert db.r.xinfo_groups("mqwatch:canary")[0]["pending"] == 0  # acknowledged
    # replay: the first entry's fields added again (a tool re-publishing what it read)
    (_, fields), = db.r.xrange("mqwatch:canary", count=1)
    db.r.xadd("mqwatch:canary", fields)
    snap = collect_once(check)
    assert snap.value("mqwatch_canary_roundtrip_seconds").count == 2
    assert _canary(snap) == (0, 1, 0)
    assert [v for _, v in snap.samples("mqwatch_canary_failures_total")] == [0, 0, 0]


def test_stream_canary_entry_deleted_with_its_key_before_it_was_read_counts_as_lost(db):
    from mqwatch.checks.redis.canary import StreamCanary

    canary = StreamCanary("mqwatch:canary", 1.0, lost_after=1.0)
    assert canary.run(db.r, 1.0) is None
    canary.send(db.r)  # added...
    db.r.delete("mqwatch:canary")  # ...and the key deleted before the canary read it
    failure = canary.run(db.r, 1.0)  # the next round recreates key and group and comes back
    assert failure is None, failure
    assert canary.sequence_counts() == (0, 0, 0)  # not lost before lost_after
    time.sleep(1.05)
    assert canary.sequence_counts() == (1, 0, 0)


def test_stream_canary_is_off_by_default(db):
    snap = collect_once(db.check(keys=["stream:*"], frameworks=[]))
    assert snap.samples("mqwatch_canary_roundtrip_seconds") == []
    assert not db.r.exists("mqwatch:canary")
