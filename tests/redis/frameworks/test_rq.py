"""RQ (PyPI rq) writes the state through its own API and workers; RQ's API is the reference."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import pytest
from rq import Queue, SimpleWorker, Worker

from mqwatch.agent.scheduler import Collector
from tests.helpers import make_check, wait_until
from tests.redis.frameworks import rq_jobs
from tests.redis.frameworks.conftest import ROOT, Process

FRAMEWORK = "rq"
F = {"framework": "rq"}
UTC = dt.timezone.utc


def _fail(queue: Queue, func, n: int = 1) -> None:
    for _ in range(n):
        queue.enqueue(func)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.fixture(scope="module")
def rq_state(framework_db):
    r = framework_db.r
    default, failing, slow = (Queue(n, connection=r) for n in ("default", "failing", "slow"))
    for i in range(3):
        default.enqueue(rq_jobs.ok, i)
    parent = default.enqueue(rq_jobs.ok, "parent")
    default.enqueue(rq_jobs.ok, depends_on=parent)  # deferred until the parent finishes
    now = dt.datetime.now(UTC)
    default.enqueue_in(dt.timedelta(minutes=10), rq_jobs.ok)
    default.enqueue_in(dt.timedelta(minutes=20), rq_jobs.ok)
    default.enqueue_at(now - dt.timedelta(seconds=90), rq_jobs.ok)  # overdue: no scheduler runs
    _fail(failing, rq_jobs.divide, 2)
    _fail(failing, rq_jobs.bad_value, 1)
    slow.enqueue(rq_jobs.slow, 120)
    rq_cli = str(Path(sys.executable).parent / "rq")
    worker = Process([rq_cli, "worker", "slow", "--url", framework_db.url, "--name", "mqwatch-test-slow"], cwd=ROOT)
    try:
        wait_until(lambda: slow.started_job_registry.count == 1, timeout=60, interval=0.3,
                   message="rq worker to start the slow job")
        yield framework_db, default, failing, slow
    finally:
        worker.stop()


def _truth(r, default, failing, slow) -> dict:
    now = time.time()
    oldest = default.jobs[0].enqueued_at
    oldest = (oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)).timestamp()
    return {
        "now": now, "latency": now - oldest,
        "queued": {q.name: len(q) for q in (default, failing, slow)},
        "scheduled": default.scheduled_job_registry.count,
        "overdue": len(default.scheduled_job_registry.get_jobs_to_schedule(int(now))),
        "deferred": default.deferred_job_registry.count,
        "started": {q.name: q.started_job_registry.count for q in (default, failing, slow)},
        "failed": failing.failed_job_registry.count,
        "workers": Worker.count(connection=r),
    }


def test_every_number_matches_rqs_api(rq_state):
    db, default, failing, slow = rq_state
    _, check = make_check(db.check(frameworks=["rq"], keys=[]))
    before = _truth(db.r, default, failing, slow)
    snap = Collector(check, 10).collect()
    after = _truth(db.r, default, failing, slow)
    assert snap.ok, snap.error
    for name, n in after["queued"].items():
        assert snap.value("mqwatch_queue_messages", queue=name, **F) == n, name
        assert snap.value("mqwatch_redis_queue_jobs", queue=name, state="queued", **F) == n, name
    assert after["queued"]["default"] == 4
    lat = snap.value("mqwatch_redis_queue_latency_seconds", queue="default", **F)
    assert before["latency"] - 0.5 <= lat <= after["latency"] + 0.5
    assert snap.value("mqwatch_delayed_messages", queue="default", **F) == after["scheduled"] == 3
    assert snap.value("mqwatch_delayed_overdue_messages", queue="default", **F) == after["overdue"] == 1
    assert snap.value("mqwatch_redis_queue_jobs", queue="default", state="scheduled", **F) == 3
    assert snap.value("mqwatch_redis_queue_jobs", queue="default", state="deferred", **F) == after["deferred"] == 1
    for name, n in after["started"].items():
        assert snap.value("mqwatch_pending_messages", queue=name, **F) == n, name
        assert snap.value("mqwatch_redis_queue_jobs", queue=name, state="started", **F) == n, name
    assert after["started"]["slow"] == 1
    dlq = {"dlq": "rq:failed:failing", "source": "failing", **F}
    assert snap.value("mqwatch_dlq_messages", **dlq) == after["failed"] == 3
    assert snap.value("mqwatch_dlq_messages_total", **dlq) == 3
    assert snap.value("mqwatch_dlq_reason_messages", dlq="rq:failed:failing", reason="ZeroDivisionError", **F) == 2
    assert snap.value("mqwatch_dlq_reason_messages", dlq="rq:failed:failing", reason="ValueError", **F) == 1
    assert snap.value("mqwatch_redis_workers", **F) == after["workers"] == 1


def test_failures_in_the_same_second_across_a_collection_are_all_counted(rq_state):
    """RQ scores a failure int(now) + failure_ttl: two failures of one second share a score."""
    db, _, failing, _ = rq_state
    _, check = make_check(db.check(frameworks=["rq"], keys=[]))
    registry = failing.failed_job_registry
    for _attempt in range(5):
        total = Collector(check, 10).collect().value("mqwatch_dlq_messages_total", dlq="rq:failed:failing",
                                                      source="failing", **F)
        wait_until(lambda: time.time() % 1 < 0.1, timeout=2, interval=0.01)
        first = failing.enqueue(rq_jobs.divide)
        SimpleWorker([failing], connection=db.r).work(burst=True)
        Collector(check, 10).collect()
        second = failing.enqueue(rq_jobs.divide)
        SimpleWorker([failing], connection=db.r).work(burst=True)
        snap = Collector(check, 10).collect()
        if db.r.zscore(registry.key, first.id) == db.r.zscore(registry.key, second.id):
            break
    else:
        pytest.fail("could not fail two jobs within one second in 5 attempts (machine too slow?)")
    assert snap.value("mqwatch_dlq_messages_total", dlq="rq:failed:failing", source="failing", **F) == total + 2
    assert snap.value("mqwatch_dlq_messages", dlq="rq:failed:failing", source="failing", **F) == registry.count
