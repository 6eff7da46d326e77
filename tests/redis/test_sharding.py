"""`--shard I/N` on Redis: each shard reads only the keys it owns; together they export exactly
what one unsharded agent does; server health, the scan's figures and the job frameworks once."""

from __future__ import annotations

import json
import time

from mqwatch.agent.sharding import Shard
from tests.sharding import assert_union_equals, collect_sharded, names_covering

SHARDS = 3
FIRST_ONLY = ("mqwatch_redis_used_memory_bytes", "mqwatch_redis_keys_scanned", "mqwatch_redis_key_budget_exceeded",
              "mqwatch_redis_replication_role", "mqwatch_redis_connected_clients")


def _fill(r):
    now = time.time()
    lists = names_covering("jobs:q", 6, 2, SHARDS)
    for i, k in enumerate(lists):
        r.rpush(k, *[f"m{j}" for j in range(i + 1)])
    r.rpush(f"{lists[0]}:processing", "m9", "m8")  # pending of lists[0], whoever owns this key
    for i, k in enumerate(names_covering("delay:z", 4, 1, SHARDS)):
        r.zadd(k, {"late": now - 60 * (i + 1), "soon": now + 600})
    for i, k in enumerate(names_covering("stream:s", 4, 1, SHARDS)):
        ids = [r.xadd(k, {"n": j}) for j in range(3 + i)]
        r.xgroup_create(k, "billing", id=ids[0])
    for i, k in enumerate(names_covering("orders-dlq", 3, 1, SHARDS)):
        r.rpush(f"{k}:dead", *[json.dumps({"error_class": "Boom"})] * (i + 1))
    # a Sidekiq-shaped queue: frameworks are read by shard 0
    r.sadd("queues", "default")
    r.rpush("queue:default", json.dumps({"class": "Mailer", "jid": "j1", "enqueued_at": now - 5, "queue": "default"}))


def test_three_shards_export_what_one_agent_does(db):
    _fill(db.r)
    check = db.check(keys=["jobs:*", "delay:*", "stream:*"], dlq_keys=["*:dead"], frameworks=["sidekiq"])
    whole, parts = collect_sharded(check, SHARDS)
    # the server's own figures (memory, clients, uptime) move between two reads
    server = [n for n in whole.families if n.startswith("mqwatch_redis_")
              and not n.startswith(("mqwatch_redis_key", "mqwatch_redis_queue", "mqwatch_redis_workers"))]
    where = assert_union_equals(whole, parts, volatile=server)

    assert whole.value("mqwatch_pending_messages", queue="jobs:q-0", framework="plain") == 2
    assert len(whole.samples("mqwatch_dlq_messages")) >= 3
    for (name, labels), shard in where.items():
        lbl = dict(labels)
        if name in FIRST_ONLY or lbl.get("framework") == "sidekiq":
            assert shard == 0, (name, lbl)
    for name in FIRST_ONLY:
        assert whole.samples(name), name
    # every shard read some keys of its own
    for i in range(SHARDS):
        assert any(where[k] == i and k[0] in ("mqwatch_queue_messages", "mqwatch_delayed_messages") for k in where)


def test_a_shard_sends_reads_only_for_the_keys_it_owns(db):
    _fill(db.r)
    from mqwatch.agent.app import build_check
    from tests.helpers import collect_once, config_for

    cfg = config_for(db.check(keys=["jobs:*", "delay:*", "stream:*"], dlq_keys=["*:dead"], frameworks=[])).checks[0]
    check = build_check(cfg, Shard(1, SHARDS))
    db.r.config_resetstat()
    try:
        assert collect_once(check).ok
    finally:
        check.close()
    stats = db.r.info("commandstats")
    typed = stats.get("cmdstat_type", {}).get("calls", 0)
    keys = [k for k in db.r.scan_iter(count=1000) if not k.startswith(b"queue")]
    owned = [k for k in keys if Shard(1, SHARDS).owns(k)]
    assert typed == len(owned) < len(keys)
    assert "cmdstat_info" not in stats  # server health is shard 0's
