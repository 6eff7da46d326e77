"""Benchmark 2 in `python -m benchmarks`: wraps benchmarks/redis_vs_exporter.py (owned by the Redis check).

Only adapts its result to the shared table; what is measured and how is defined there.
"""

from __future__ import annotations

import os

from benchmarks.report import Result, at_most

TITLE = "2. Redis at scale: mqwatch collection vs a redis-py floor and prometheus-redis-exporter"


def run(smoke: bool = False) -> Result:
    from benchmarks import redis_vs_exporter as bench

    sizes = (dict(lists=50, zsets=40, streams=5, runs=1, cache=2000, cache_runs=1) if smoke else
             dict(lists=5000, zsets=4900, streams=100, runs=5, cache=1_000_000, cache_runs=3))
    load = os.getloadavg()[0]
    scenarios = bench.run(**sizes)
    load = (load, os.getloadavg()[0])
    text = bench.report(scenarios)
    print(text)
    res = Result("redis", TITLE)
    names = {"queues": f"{sizes['lists'] + sizes['zsets'] + sizes['streams']:,} queue keys",
             "cache": f"same among {sizes['cache']:,} unrelated keys"}
    for name, r in scenarios.items():
        runs = sizes["runs"] if name == "queues" else sizes["cache_runs"]
        res.rows.append(at_most(f"{names[name]}: collection+render vs redis-py floor (min of {runs} each)",
                                r["floor_ratio"], bench.FLOOR_TARGET))
        res.rows.append(at_most(f"{names[name]}: collection+render vs exporter scrape (min of {runs} each)",
                                r["ratio"], bench.TARGET))
    res.details += [f"Run by `benchmarks/redis_vs_exporter.py` with {sizes}. Load average (1 min) at start and "
                    f"end: {load[0]:.1f}, {load[1]:.1f} on 2 cores (the machine is shared; the sides alternate "
                    "within each run, so the ratios are of the same conditions).", "", "```", text, "```"]
    return res
