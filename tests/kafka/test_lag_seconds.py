"""How dated committed offsets become the exported lag in seconds (pure: no broker)."""

from mqwatch.checks.kafka.timelag import lag_seconds


def _run(dates, lags, offsets):
    return lag_seconds(dates, lags, lambda gid: offsets[gid])


def test_caught_up_topic_is_zero_and_the_worst_dated_partition_wins():
    lags = {"billing": {"orders": {0: 0, 1: 5, 2: 2}}}
    offsets = {"billing": {("orders", 0): 10, ("orders", 1): 3, ("orders", 2): 7}}
    dates = {("orders", 1, 3): 40.0, ("orders", 2, 7): 12.5}
    worst, per_partition = _run(dates, lags, offsets)
    assert worst == {("billing", "orders"): 40.0}
    assert per_partition == {("billing", "orders", 0): 0.0, ("billing", "orders", 1): 40.0, ("billing", "orders", 2): 12.5}

    caught_up = {"billing": {"orders": {0: 0, 1: 0}}}
    assert _run({}, caught_up, offsets)[0] == {("billing", "orders"): 0.0}


def test_a_lagging_topic_none_of_whose_partitions_could_be_dated_gets_no_value_not_zero():
    lags = {"billing": {"orders": {0: 0, 1: 5}}}
    offsets = {"billing": {("orders", 0): 10, ("orders", 1): 3}}
    worst, per_partition = _run({}, lags, offsets)
    assert ("billing", "orders") not in worst
    assert ("billing", "orders", 1) not in per_partition


def test_groups_at_the_same_offset_share_one_date_and_other_offsets_do_not():
    lags = {"a": {"orders": {0: 4}}, "b": {"orders": {0: 4}}, "c": {"orders": {0: 1}}}
    offsets = {"a": {("orders", 0): 6}, "b": {("orders", 0): 6}, "c": {("orders", 0): 9}}
    worst, _ = _run({("orders", 0, 6): 30.0}, lags, offsets)
    assert worst == {("a", "orders"): 30.0, ("b", "orders"): 30.0}
