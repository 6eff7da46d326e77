"""The end-to-end canary against a broker of the test's own (it is frozen and stopped)."""

from __future__ import annotations

import threading
import time

from tests.helpers import unique, wait_until
from tests.kafka.support import CheckRun

CANARY = {"enabled": True, "interval": "200ms", "timeout": "1s", "replication_factor": 1}


def _canary_threads():
    return [t for t in threading.enumerate() if t.name.startswith("canary-")]


def _roundtrips(snap):
    h = snap.value("mqwatch_canary_roundtrip_seconds")
    return h.count if h is not None else 0


def _failures(snap):
    return {lbl["stage"]: v for lbl, v in snap.samples("mqwatch_canary_failures_total")}


def test_canary_round_trips_then_fails_while_the_broker_is_frozen_and_recovers(fresh_tansu):
    run = CheckRun({"bootstrap_servers": fresh_tansu.address, "canary": CANARY})
    try:
        snap = wait_until(lambda: (s := run.collect()) and _roundtrips(s) >= 3 and s, timeout=20,
                          message="three canary round trips")
        h = snap.value("mqwatch_canary_roundtrip_seconds")
        assert 0 < h.sum / h.count < 1.0
        assert _failures(snap) == {"produce": 0, "consume": 0, "timeout": 0}
        assert snap.value("mqwatch_kafka_topic_partitions", queue="mqwatch-canary") == 1  # created by the canary

        fresh_tansu.pause()  # the port accepts connections, nothing answers
        time.sleep(2.5)
        fresh_tansu.resume()
        snap = wait_until(lambda: (s := run.collect()) and sum(_failures(s).values()) >= 1 and s, timeout=20,
                          message="a canary failure counted")
        before = _roundtrips(snap)
        snap = wait_until(lambda: (s := run.collect()) and _roundtrips(s) > before and s, timeout=20,
                          message="round trips again after the broker resumed")
        assert sum(_failures(snap).values()) >= 1  # a counter: failures stay counted
    finally:
        run.close()
    assert _canary_threads() == []


def test_canary_fails_when_the_broker_stops_and_close_still_returns_promptly(fresh_tansu):
    run = CheckRun({"bootstrap_servers": fresh_tansu.address, "canary": CANARY})
    try:
        wait_until(lambda: _roundtrips(run.collect()) >= 1, timeout=20, message="a canary round trip")
        fresh_tansu.stop()
        canary = run.check._canary
        wait_until(lambda: sum(canary.stats.failure_counts().values()) >= 1, timeout=10,
                   message="the canary to count a failure")
        assert canary.stats.failure_counts()["produce"] >= 1
        t0 = time.monotonic()
    finally:
        run.close()
    assert time.monotonic() - t0 < 8
    assert _canary_threads() == []


def test_missing_canary_topic_without_create_counts_produce_failures(kafka_bootstrap):
    missing = unique("canary-missing")
    run = CheckRun({"bootstrap_servers": kafka_bootstrap, "topics": {"include": ["^canary-missing"]},
                    "canary": {**CANARY, "topic": missing, "create_topic": False}})
    try:
        snap = wait_until(lambda: (s := run.collect()) and _failures(s)["produce"] >= 1 and s, timeout=20,
                          message="a produce failure")
        assert _roundtrips(snap) == 0
        assert snap.value("mqwatch_kafka_topic_partitions", queue=missing) is None  # not auto-created either
    finally:
        run.close()


def test_canary_is_off_by_default(kafka_check):
    snap = kafka_check("canary-off").collect()
    assert snap.samples("mqwatch_canary_roundtrip_seconds") == []
    assert snap.samples("mqwatch_canary_failures_total") == []
    assert _canary_threads() == []
