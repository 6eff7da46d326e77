"""Sidekiq, RQ, BullMQ and Celery each with a queue `default` in ONE database (the sample config
watches all four on one URL): four series, each holding what its own framework says."""

from __future__ import annotations

from rq import Queue

from tests.helpers import collect_once
from tests.redis.frameworks.celery_tasks import make_app
from tests.redis.frameworks.conftest import loads, need_bullmq, need_sidekiq, node_env, run

FRAMEWORK = "shared"


def test_same_queue_name_in_four_frameworks_is_four_series(framework_db):
    need_sidekiq()
    need_bullmq()
    db = framework_db
    run(["ruby", "sidekiq_driver.rb", "push", "default", "PlainJob", "1"], env={"REDIS_URL": db.url})
    sidekiq = loads(run(["ruby", "sidekiq_driver.rb", "truth"], env={"REDIS_URL": db.url}))["queues"]["default"]["size"]
    rq_queue = Queue("default", connection=db.r)
    for i in range(2):
        rq_queue.enqueue("tests.redis.frameworks.rq_jobs.ok", i)
    bullmq = loads(run(["node", "bullmq_driver.js", db.url, "add", "default", "3"], env=node_env()))["waiting"]
    app, add = make_app(db.url)
    for i in range(4):
        add.apply_async((i, i), queue="default")
    with app.connection_for_read() as conn:
        celery = conn.default_channel.queue_declare("default", passive=True).message_count
    app.close()

    truth = {"sidekiq": sidekiq, "rq": len(rq_queue), "bullmq": bullmq, "celery": celery}
    assert truth == {"sidekiq": 1, "rq": 2, "bullmq": 3, "celery": 4}
    snap = collect_once({"kind": "redis", "name": "jobs", "url": db.url})  # every default: all four frameworks
    assert snap.ok, snap.error
    got = {labels["framework"]: v for labels, v in snap.samples("mqwatch_queue_messages") if labels["queue"] == "default"}
    assert got == truth
    for framework in truth:
        assert snap.value("mqwatch_redis_queue_framework", queue="default", framework=framework) == 1
    # no key a framework owns is reported again as a plain key
    assert not [lb for lb, _ in snap.samples("mqwatch_queue_messages") if lb["framework"] == "plain"]
