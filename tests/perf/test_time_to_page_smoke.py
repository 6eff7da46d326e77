"""Smoke run of the time-to-page benchmark (benchmarks/bench_time_to_page.py), so it cannot rot.

The same pipeline as the real run (tansu, Redis, the agent, Prometheus with the shipped rules,
the shipped Alertmanager example, a webhook receiver), with 1 s intervals and --max-for-capped
rules: each of the four events must reach the receiver, and the figures land in the section.
How fast is judged only by the real run (`./mqw bench time_to_page`, docs/benchmarks.md).
"""

from __future__ import annotations

import pytest

from tests.ops.stack import prometheus_available
from tests.perf.test_benchmarks_smoke import rows, run_smoke

pytestmark = pytest.mark.skipif(not prometheus_available(), reason="Debian prometheus/prometheus-alertmanager missing")


@pytest.mark.timeout(120)
def test_time_to_page_benchmark_pages_each_event(tmp_path):
    _, meta = run_smoke("time_to_page", tmp_path)
    measured = rows(meta)
    for alert in ("MqwatchConsumerStopped", "MqwatchConsumerStalled", "MqwatchDLQReceivingMessages",
                  "MqwatchDelayedQueueOverdue"):
        (row,) = [r for what, r in measured.items() if alert in what]
        # from the event to the receiver: positive, and within the smoke run's minute
        assert 0 < row["value"] < 60, row
