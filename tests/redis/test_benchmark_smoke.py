"""A small run of benchmarks/redis_vs_exporter.py, so the benchmark cannot rot (timing not asserted)."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import redis_vs_exporter as bench


@pytest.mark.skipif(not shutil.which(bench.EXPORTER), reason="prometheus-redis-exporter is not installed")
def test_benchmark_runs_and_every_side_reports_the_keyspace():
    scenarios = bench.run(lists=50, zsets=40, streams=5, runs=1, cache=500)
    queues, cache = scenarios["queues"], scenarios["cache"]
    assert queues["keys"] == 95 and cache["keys"] == 595
    for result in (queues, cache):
        assert result["exporter_series"]["redis_key_size"] == 90
        snap = result["snapshot"]
        assert len(snap.samples("mqwatch_delayed_overdue_seconds")) == 40
        assert sum(1 for _, v in snap.samples("mqwatch_delayed_overdue_messages") if v > 0) == 4
        assert len(snap.samples("mqwatch_consumer_lag_seconds")) == 10
        # the floor's answer was checked equal to mqwatch's, series by series (run() raises otherwise)
        assert result["series_checked"] == 50 + 40 + 5 + 10
    assert "ratio mqwatch/floor" in bench.report(scenarios)
