"""Benchmark 3 in `python -m benchmarks`: wraps benchmarks/pulsar_exposition.py (owned by the Pulsar check).

Only adapts its result to the shared table; what is measured and how is defined there.
"""

from __future__ import annotations

import io

from benchmarks.report import Result, at_most

TITLE = "3. Pulsar exposition: mqwatch collection vs prometheus-client's parser alone"


def run(smoke: bool = False) -> Result:
    from benchmarks import pulsar_exposition as bench

    sizes = dict(topics=200, subscriptions=2, runs=1) if smoke else dict(topics=10_000, subscriptions=2, runs=3)
    out = io.StringIO()
    report = bench.run(out=out, **sizes)
    print(out.getvalue(), end="")
    res = Result("pulsar", TITLE)
    res.rows.append(at_most(f"collection time vs parser alone (min of {sizes['runs']})", report["ratio"], report["target"]))
    res.details += [f"Run by `benchmarks/pulsar_exposition.py` with {sizes}:", "", "```", out.getvalue().rstrip(), "```"]
    return res
