"""The Kafka part of `mqwatch demo` shows this issue's features: seconds, status, DLQ reasons, canary."""

from __future__ import annotations

from mqwatch.agent.demo import start_parts
from mqwatch.checks.kafka.demo import DEAD_LETTER_CAUSES, ORDERS_DLT
from tests.helpers import wait_until
from tests.kafka.support import CheckRun, status_of


def test_demo_part_reports_status_seconds_dead_letter_reasons_and_canary():
    [part] = start_parts(only=["kafka"])
    run = CheckRun({**part.checks[0], "status_window": 3})
    try:
        def ready():
            snap = run.collect()
            reasons = {lbl["reason"] for lbl, _ in snap.samples("mqwatch_dlq_reason_messages")}
            h = snap.value("mqwatch_canary_roundtrip_seconds")
            return snap if set(DEAD_LETTER_CAUSES) <= reasons and h is not None and h.count >= 1 else None

        snap = wait_until(ready, timeout=40, interval=0.5, message="dead letters of both causes and a canary round trip")
        assert snap.value("mqwatch_dlq_messages_total", dlq=ORDERS_DLT, source="orders") >= 3
        assert status_of(snap, "orders", "fraud-check") == "stopped"
        assert snap.value("mqwatch_consumer_lag_seconds", queue="orders", consumer="fraud-check") > 1
    finally:
        run.close()
        part.stop()
