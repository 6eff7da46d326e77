"""BullMQ 6 (npm bullmq + ioredis, run by bullmq_driver.js) writes the state through its own API;
BullMQ's API (getJobCounts, isPaused, getJobs, getDelayed, getFailed) is the reference."""

from __future__ import annotations

import json
import subprocess

import pytest

from mqwatch.agent.scheduler import Collector
from tests.helpers import make_check
from tests.redis.frameworks.conftest import Process, need_bullmq, node_env

FRAMEWORK = "bullmq"
F = {"framework": "bullmq"}
STATES = ("waiting", "prioritized", "waiting-children", "active", "delayed", "failed")


class Driver:
    def __init__(self, url):
        self.process = Process(["node", "bullmq_driver.js", url], env=node_env(), stdin=subprocess.PIPE)
        self.read()  # {"ready": true} once the state is set up

    def read(self) -> dict:
        while True:
            line = self.process.proc.stdout.readline()
            if not line:
                raise AssertionError(f"bullmq driver exited ({self.process.proc.wait(5)})")
            if line.startswith("{"):
                return json.loads(line)

    def ask(self, command: str) -> dict:
        self.process.proc.stdin.write(command + "\n")
        self.process.proc.stdin.flush()
        return self.read()


@pytest.fixture(scope="module")
def bullmq(framework_db):
    need_bullmq()
    driver = Driver(framework_db.url)
    try:
        yield framework_db, driver
    finally:
        driver.process.stop()


def test_every_number_matches_bullmqs_api(bullmq):
    db, driver = bullmq
    # BullMQ keeps only the error message (failedReason): compare it as such with `reasons: message`
    # (the default, `class`, counts these as message_hidden: tests/redis/test_reasons_mode.py).
    _, check = make_check(db.check(frameworks=["bullmq"], keys=[], reasons="message"))
    before = driver.ask("truth")
    snap = Collector(check, 10).collect()
    after = driver.ask("truth")
    assert snap.ok, snap.error
    assert after["queues"]["retrying"]["max_attempts"] >= 3
    for name, q in after["queues"].items():
        counts = q["counts"]
        for state in STATES:
            assert snap.value("mqwatch_redis_queue_jobs", queue=name, state=state, **F) == counts[state], (name, state)
        assert snap.value("mqwatch_queue_messages", queue=name, **F) == counts["waiting"] + counts["prioritized"], name
        # executions of the most retried job waiting for its next attempt (BullMQ's attemptsMade)
        assert snap.value("mqwatch_pending_max_deliveries", queue=name, **F) == q["max_attempts"], name
        lat = snap.value("mqwatch_redis_queue_latency_seconds", queue=name, **F)
        assert before["queues"][name]["latency"] - 0.5 <= lat <= q["latency"] + 0.5, name
        assert snap.value("mqwatch_pending_messages", queue=name, **F) == counts["active"], name
        assert snap.value("mqwatch_delayed_messages", queue=name, **F) == counts["delayed"], name
        assert snap.value("mqwatch_delayed_overdue_messages", queue=name, **F) == q["overdue"], name
        assert snap.value("mqwatch_redis_queue_paused", queue=name, **F) == (1 if q["paused"] else 0), name
        dlq = {"dlq": f"bull:{name}:failed", **F}
        assert snap.value("mqwatch_dlq_messages", source=name, **dlq) == counts["failed"], name
        for reason, n in q["reasons"].items():
            assert snap.value("mqwatch_dlq_reason_messages", reason=reason, **dlq) == n, (name, reason)
    # the state the driver built, so the comparisons above covered what they should
    qs = after["queues"]
    assert qs["default"]["counts"]["prioritized"] == 2 and qs["default"]["counts"]["waiting"] == 3
    assert qs["default"]["latency"] > 1.0 and qs["prio-only"]["latency"] > 1.0  # prioritized jobs are the oldest
    assert qs["default"]["overdue"] == 1 and qs["slow"]["counts"]["active"] == 1
    assert qs["held"]["paused"] and qs["held"]["counts"]["waiting"] == 2
    assert qs["flows"]["counts"]["waiting-children"] == 1
    assert qs["failing"]["reasons"] == {"connect ECONNREFUSED": 2, "invalid payload": 1}

    driver.ask("fail failing 2")
    snap = Collector(check, 10).collect()
    dlq = {"dlq": "bull:failing:failed", "source": "failing", **F}
    assert snap.value("mqwatch_dlq_messages_total", **dlq) == 5
    assert snap.value("mqwatch_dlq_messages", **dlq) == driver.ask("truth")["queues"]["failing"]["counts"]["failed"]
