"""Celery 5 (PyPI celery[redis]) writes the state through its own API and a real worker; kombu's
queue size and the worker's `inspect scheduled` are the reference."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import pytest

from mqwatch.agent.scheduler import Collector
from tests.helpers import make_check, wait_until
from tests.redis.frameworks.celery_tasks import make_app
from tests.redis.frameworks.conftest import ROOT, Process

FRAMEWORK = "celery"
F = {"framework": "celery"}


@pytest.fixture(scope="module")
def celery_state(framework_db):
    app, add = make_app(framework_db.url)
    sent = time.time()
    for i in range(3):
        add.apply_async((i, i), queue="default")
    add.apply_async((1, 1), queue="default", priority=6)  # into kombu's priority list of `default`
    add.apply_async((1, 2), queue="default", countdown=600)  # eta: not ready, not backlog
    add.apply_async((1, 3), queue="default", eta=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=60))
    add.apply_async((1, 1), queue="reports")
    # A worker on `timed` fetches eta tasks at once and holds them, unacknowledged, until their eta.
    celery = str(Path(sys.executable).parent / "celery")
    worker = Process([celery, "-A", "tests.redis.frameworks.celery_tasks", "worker", "-Q", "timed", "--pool", "solo",
                      "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", "mqwatch-test@%h",
                      "--loglevel", "WARNING"], env={"CELERY_BROKER_URL": framework_db.url}, cwd=ROOT)
    try:
        for i in range(2):
            add.apply_async((i, 0), queue="timed", countdown=900)
        wait_until(lambda: framework_db.r.hlen("unacked") == 2, timeout=60, interval=0.3,
                   message="celery worker to hold the eta tasks")
        yield framework_db, app, sent
    finally:
        worker.stop()
        app.close()


def _size(app, queue: str) -> int:
    with app.connection_for_read() as conn:
        return conn.default_channel.queue_declare(queue, passive=True).message_count


def test_every_number_matches_celerys_own_view(celery_state):
    db, app, sent = celery_state
    _, check = make_check(db.check(frameworks=["celery"], keys=[]))
    first = Collector(check, 10).collect()
    assert first.ok, first.error
    default, reports = _size(app, "default"), _size(app, "reports")
    assert (default, reports) == (6, 1)
    assert db.r.llen(b"default\x06\x166") == 1  # the priority task sits in kombu's priority list
    # 6 messages in `default`: the countdown task is not ready; the one whose eta passed is
    assert first.value("mqwatch_queue_messages", queue="default", **F) == default - 1
    assert first.value("mqwatch_queue_messages", queue="reports", **F) == reports
    assert first.value("mqwatch_delayed_messages", queue="default", **F) == 2
    assert first.value("mqwatch_delayed_overdue_messages", queue="default", **F) == 1
    assert first.value("mqwatch_delayed_overdue_seconds", queue="default", **F) == pytest.approx(60 + time.time() - sent,
                                                                                                 abs=5)
    scheduled = app.control.inspect(timeout=5).scheduled() or {}
    held = sum(len(v) for v in scheduled.values())
    assert held == 2
    assert first.value("mqwatch_delayed_messages", queue="timed", **F) == held
    assert first.value("mqwatch_pending_messages", queue="unacked", **F) == held
    # Latency: Celery records no enqueue time, so mqwatch ages the oldest ready message from
    # when it first saw it: a lower bound that grows with time and never passes the real age.
    time.sleep(1.0)
    second = Collector(check, 10).collect()
    lat = second.value("mqwatch_redis_queue_latency_seconds", queue="default", **F)
    assert 1.0 <= lat <= time.time() - sent
