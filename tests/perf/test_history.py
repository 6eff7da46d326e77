"""The status page's sparkline history: right points per series, vanished series forgotten."""

from mqwatch.agent.history import SeriesHistory


def test_points_follow_each_series_from_when_it_appeared():
    h = SeriesHistory(points=3)
    h.record(10.0, [("a", 1.0)])
    h.record(20.0, [("a", 2.0), ("b", 5.0)])
    h.record(30.0, [("a", 3.0), ("b", 6.0)])
    h.record(40.0, [("a", 4.0), ("b", 7.0)])
    assert h.get("a") == [(20.0, 2.0), (30.0, 3.0), (40.0, 4.0)]  # only the last 3
    assert h.get("b") == [(20.0, 5.0), (30.0, 6.0), (40.0, 7.0)]


def test_a_series_missing_from_a_cycle_is_forgotten_and_starts_over():
    h = SeriesHistory(points=5)
    h.record(1.0, [("gone", 1.0), ("stays", 1.0)])
    h.record(2.0, [("stays", 2.0)])
    assert "gone" not in h and h.get("gone") == () and len(h) == 1
    h.record(3.0, [("gone", 9.0), ("stays", 3.0)])
    assert h.get("gone") == [(3.0, 9.0)]
    assert h.get("stays") == [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]
