"""A small run of benchmarks/redis_vs_exporter.py, so the benchmark cannot rot (timing not asserted)."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import redis_vs_exporter as bench


@pytest.mark.skipif(not shutil.which(bench.EXPORTER), reason="prometheus-redis-exporter is not installed")
def test_benchmark_runs_and_both_sides_report_the_keyspace():
    result = bench.run(lists=50, zsets=40, streams=5, runs=1)
    assert result["keys"] == 95
    assert result["exporter_series"]["redis_key_size"] == 90
    snap = result["snapshot"]
    assert len(snap.samples("mqwatch_delayed_overdue_seconds")) == 40
    assert sum(1 for _, v in snap.samples("mqwatch_delayed_overdue_messages") if v > 0) == 4
    assert len(snap.samples("mqwatch_consumer_lag_seconds")) == 10
    assert "ratio mqwatch/exporter" in bench.report(result)
