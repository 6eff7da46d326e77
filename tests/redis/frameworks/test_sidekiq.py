"""Sidekiq 6 (Debian ruby-sidekiq) writes the state; Sidekiq's own API (sidekiq_driver.rb truth)
is the reference for every number mqwatch reports about it."""

from __future__ import annotations


import pytest

from mqwatch.agent.scheduler import Collector
from tests.helpers import make_check, wait_until
from tests.redis.frameworks.conftest import Process, loads, need_sidekiq, run

FRAMEWORK = "sidekiq"
F = {"framework": "sidekiq"}


@pytest.fixture(scope="module")
def sidekiq(framework_db):
    need_sidekiq()
    env = {"REDIS_URL": framework_db.url}

    def driver(*args):
        return run(["ruby", "sidekiq_driver.rb", *map(str, args)], env=env)

    def truth():
        return loads(driver("truth"))

    driver("push", "default", "PlainJob", 3)
    driver("push", "mailers", "PlainJob", 2)
    driver("schedule", "PlainJob", "default", 600, 2)
    driver("schedule", "PlainJob", "mailers", -90, 1)  # overdue: the poller is off (sidekiq_jobs.rb)
    driver("push", "failing", "TimeoutJob", 2)  # retry: 0 -> dead set
    driver("push", "failing", "FlakyJob", 1)  # -> retry set
    driver("push", "reports", "BadArgsJob", 1)  # dead, from another queue
    driver("push", "slow", "SlowJob", 1, 120)  # busy while the tests run
    worker = Process(["sidekiq", "-r", "./sidekiq_jobs.rb", "-q", "failing", "-q", "reports", "-q", "slow",
                      "-c", "3", "-t", "1"], env=env)
    try:
        # Sidekiq publishes busy work with its heartbeat (every few seconds), so a heartbeat taken
        # while a failing job ran can still show that job after it has died: wait for the slow one.
        wait_until(lambda: (t := truth())["dead"]["size"] == 3 and t["retry"]["size"] == 1
                   and t["busy_by_queue"] == {"slow": 1} and t["processes"] == 1, timeout=60, interval=0.5, message="sidekiq worker to run the jobs")
        yield framework_db, driver, truth
    finally:
        worker.stop()


def test_every_number_matches_sidekiqs_api(sidekiq):
    db, driver, truth = sidekiq
    _, check = make_check(db.check(frameworks=["sidekiq"], keys=[]))
    before = truth()
    snap = Collector(check, 10).collect()
    after = truth()
    assert snap.ok, snap.error
    for name, q in after["queues"].items():
        assert snap.value("mqwatch_queue_messages", queue=name, **F) == q["size"], name
        lat = snap.value("mqwatch_redis_queue_latency_seconds", queue=name, **F)
        assert before["queues"][name]["latency"] - 0.5 <= lat <= after["queues"][name]["latency"] + 0.5, name
    for zset in ("scheduled", "retry"):
        key = "schedule" if zset == "scheduled" else "retry"
        assert snap.value("mqwatch_delayed_messages", queue=key, **F) == after[zset]["size"]
        assert snap.value("mqwatch_delayed_overdue_messages", queue=key, **F) == after[zset]["overdue"]
    # retried jobs: executions so far of each queue's most retried job, as Sidekiq's RetrySet has them
    assert after["retry"]["max_executions"] == {"failing": 1}
    for name, n in after["retry"]["max_executions"].items():
        assert snap.value("mqwatch_pending_max_deliveries", queue=name, **F) == n
    assert snap.value("mqwatch_pending_max_deliveries", queue="default", **F) == 0  # nothing retried
    assert after["scheduled"]["overdue"] == 1 and snap.value(
        "mqwatch_delayed_overdue_seconds", queue="schedule", **F) == pytest.approx(90, abs=15)
    # the dead set: depth and arrivals by the job's own queue, reasons by error_class
    assert after["dead"]["by_queue"] == {"failing": 2, "reports": 1}
    for source, n in after["dead"]["by_queue"].items():
        assert snap.value("mqwatch_dlq_messages", dlq="dead", source=source, **F) == n
        assert snap.value("mqwatch_dlq_messages_total", dlq="dead", source=source, **F) == n
    for error_class, n in after["dead"]["by_class"].items():
        assert snap.value("mqwatch_dlq_reason_messages", dlq="dead", reason=error_class, **F) == n
    # busy jobs (Sidekiq::Workers) as pending work of their queue; live processes
    assert after["busy"] == 1 and after["busy_by_queue"] == {"slow": 1}
    assert snap.value("mqwatch_pending_messages", queue="slow", **F) == 1
    assert snap.value("mqwatch_pending_oldest_seconds", queue="slow", **F) > 0
    assert sum(v for lb, v in snap.samples("mqwatch_pending_messages") if lb.get("framework") == "sidekiq") == after["busy"]
    assert snap.value("mqwatch_redis_workers", **F) == after["processes"] == 1

    # A new death is one arrival of its queue; the depth follows Sidekiq's.
    driver("push", "reports", "BadArgsJob", 1)
    wait_until(lambda: truth()["dead"]["size"] == 4, timeout=30, interval=0.3, message="the fourth dead job")
    snap = Collector(check, 10).collect()
    assert snap.value("mqwatch_dlq_messages", dlq="dead", source="reports", **F) == 2
    assert snap.value("mqwatch_dlq_messages_total", dlq="dead", source="reports", **F) == 2
    assert snap.value("mqwatch_dlq_messages_total", dlq="dead", source="failing", **F) == 2
    assert snap.value("mqwatch_dlq_reason_messages", dlq="dead", reason="ArgumentError", **F) == 2
