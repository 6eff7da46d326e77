"""Smoke run of the sharding benchmark (`./mqw bench --smoke shard`), so it cannot rot: it runs
the unsharded agent and 3 shards on a tiny scenario, and fails by itself unless the shards'
lags add up to the scenario's. Timings are not judged at this size."""

from __future__ import annotations

import pytest

from tests.perf.test_benchmarks_smoke import rows, run_smoke


@pytest.mark.timeout(120)
def test_shard_benchmark_runs_and_the_shards_add_up(tmp_path):
    text, meta = run_smoke("shard", tmp_path)
    got = rows(meta)
    assert len(got) == 2 and all(r["value"] > 0 for r in got.values()), got
    assert "| 300 | 3 |" in text and "running" in text and "first" in text
