"""Benchmark 2 in `python -m benchmarks`: wraps benchmarks/redis_vs_exporter.py (owned by the Redis check).

Only adapts its result to the shared table; what is measured and how is defined there.
"""

from __future__ import annotations

from benchmarks.report import Result, at_most

TITLE = "2. Redis at scale: mqwatch collection vs prometheus-redis-exporter scrape"


def run(smoke: bool = False) -> Result:
    from benchmarks import redis_vs_exporter as bench

    sizes = dict(lists=50, zsets=40, streams=5, runs=1) if smoke else dict(lists=5000, zsets=4900, streams=100, runs=5)
    result = bench.run(**sizes)
    print(bench.report(result))
    res = Result("redis", TITLE)
    res.rows.append(at_most(f"collection time vs exporter scrape (min of {sizes['runs']})", result["ratio"], bench.TARGET))
    res.details += [f"Run by `benchmarks/redis_vs_exporter.py` with {sizes}:", "", "```", bench.report(result), "```"]
    return res
