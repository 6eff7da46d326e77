"""The canary sequence bookkeeping every system's canary shares (agent/canaryseq.py)."""

from mqwatch.agent.canary import SequenceTracker


def _run(events, grace=10.0):
    """events: ("ack", seq, t) / ("got", seq) / ("tick", t); returns (lost, duplicated, reordered)."""
    t = SequenceTracker(grace)
    for e in events:
        if e[0] == "ack":
            t.acknowledged(e[1], e[2])
        elif e[0] == "got":
            t.consumed(e[1])
        else:
            t.expire(e[1])
    return t.counts()


def test_in_order_round_trips_count_nothing():
    assert _run([("ack", 1, 0), ("got", 1), ("ack", 2, 1), ("got", 2), ("tick", 100)]) == (0, 0, 0)


def test_acknowledged_and_never_consumed_is_lost_only_after_the_grace():
    events = [("ack", 1, 0), ("ack", 2, 1), ("got", 2), ("tick", 9)]
    assert _run(events) == (0, 0, 0)
    assert _run(events + [("tick", 10)]) == (1, 0, 0)


def test_replayed_message_is_a_duplicate_each_time():
    assert _run([("ack", 1, 0), ("got", 1), ("got", 1), ("got", 1)]) == (0, 2, 0)


def test_message_consumed_after_a_later_one_is_reordered_not_lost():
    assert _run([("ack", 1, 0), ("ack", 2, 0), ("got", 2), ("got", 1), ("tick", 100)]) == (0, 0, 1)


def test_late_arrival_after_being_counted_lost_is_also_reordered():
    assert _run([("ack", 1, 0), ("tick", 11), ("ack", 2, 11), ("got", 2), ("got", 1)]) == (1, 0, 1)


def test_consumed_before_its_acknowledgement_arrived_is_not_lost():
    assert _run([("got", 1), ("ack", 1, 0), ("tick", 100)]) == (0, 0, 0)


def test_memory_is_bounded_and_the_oldest_open_messages_count_as_lost():
    from mqwatch.agent import canary as canaryseq

    t = SequenceTracker(1e9)
    for seq in range(1, canaryseq.MAX_OPEN + 6):
        t.acknowledged(seq, 0)
    assert t.counts() == (5, 0, 0)
    for seq in range(1, 3 * canaryseq.MAX_CLOSED):
        t.consumed(seq)
    assert len(t._consumed) <= canaryseq.MAX_CLOSED
    t.consumed(1)  # long forgotten, at or below the highest consumed: a duplicate
    assert t.counts()[1] == 1
