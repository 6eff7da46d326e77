"""mqwatch.agent.history: the status page's sparkline points."""

from mqwatch.agent.history import SeriesHistory


def test_keeps_the_last_points_of_each_series_aligned_with_their_cycles():
    h = SeriesHistory(points=3)
    for t in range(1, 6):
        h.record(float(t), [("lag", t * 10), ("late", t)] if t >= 4 else [("lag", t * 10)])
    assert h.get("lag") == [(3.0, 30.0), (4.0, 40.0), (5.0, 50.0)]
    assert h.get("late") == [(4.0, 4.0), (5.0, 5.0)]  # appeared in cycle 4: its points start there


def test_a_series_missing_from_a_cycle_is_forgotten():
    h = SeriesHistory(points=5)
    h.record(1.0, [("a", 1), ("b", 2)])
    h.record(2.0, [("a", 3)])
    assert "b" not in h and len(h) == 1
    assert h.get("b") == ()
