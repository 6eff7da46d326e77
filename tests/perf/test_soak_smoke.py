"""Smoke run of the soak benchmark (benchmarks/bench_soak.py): it runs end to end on the real
brokers, its churned objects' series go away, and the process readings are real."""

from __future__ import annotations

import pytest

from tests.perf.test_benchmarks_smoke import rows, run_smoke


@pytest.mark.timeout(120)
def test_soak_benchmark_runs_and_churned_series_go_away(tmp_path):
    text, meta = run_smoke("soak", tmp_path)
    r = rows(meta)
    series = r["series once the churned objects are gone vs before the churn"]
    assert series["met"] is True, text[-1500:]
    assert r["highest series count during the churn"]["value"] > series["value"]  # the churn was seen
    for what, low, high in (("RSS", 10, 1000), ("open fds", 3, 10_000), ("threads", 2, 1000)):
        reading = next(v for k, v in r.items() if k.startswith(f"{what} at cycle"))["value"]
        assert low < reading < high, (what, reading)
    assert "Failed collections during the run: 0" in text
