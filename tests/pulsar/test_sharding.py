"""`--shard I/N` on Pulsar's admin API (the FIXTURE server, admin_fixture.py: pulsar-lite has no
admin API): shards ask the stats of their own topics only (plus the siblings that name their
DLQs' sources), and together export what one unsharded agent does; broker health once."""

from __future__ import annotations

from agent.sharding import Shard, owner
from tests.pulsar.admin_fixture import subscription_json, topic_stats_json
from tests.sharding import assert_union_equals, collect_sharded, names_covering

SHARDS = 3
NS = "persistent://public/default/"


def test_three_shards_export_what_one_agent_does(admin_fixture):
    admin_fixture.set_cluster()
    topics = names_covering(NS + "orders", 6, 2, SHARDS)
    docs = {t: topic_stats_json(100 + i, 1000, {"billing": subscription_json(i, consumers=1)})
            for i, t in enumerate(topics)}
    # a DLQ per topic: `<topic>-<subscription>-DLQ`, its source read from the sibling's stats
    docs.update({f"{t}-billing-DLQ": topic_stats_json(i + 1, 10, {}) for i, t in enumerate(topics)})
    admin_fixture.add_topics(docs)
    check = {"kind": "pulsar", "name": "events", "admin_url": admin_fixture.url}
    admin_fixture.requests.clear()
    whole, parts = collect_sharded(check, SHARDS)
    where = assert_union_equals(whole, parts)

    assert len(whole.samples("mqwatch_dlq_messages")) == len(topics)
    assert {lbl["source"] for lbl, _ in whole.samples("mqwatch_dlq_messages")} == set(topics)
    for (name, labels), shard in where.items():
        lbl = dict(labels)
        if name in ("mqwatch_brokers", "mqwatch_pulsar_broker_healthy"):
            assert shard == 0
        else:
            assert Shard(shard, SHARDS).owns(lbl.get("queue") or lbl["dlq"]), (name, lbl)
    # the unsharded pass asked every topic's stats once; the shards asked each topic once too,
    # plus a DLQ's source topic where that is another shard's
    stats = [r for r in admin_fixture.requests if r.split("?")[0].endswith("/stats")]
    crossing = sum(owner(f"{t}-billing-DLQ", SHARDS) != owner(t, SHARDS) for t in topics)
    assert len(stats) == 2 * len(docs) + crossing
    assert sum(r.endswith("/brokers/health") for r in admin_fixture.requests) == 2  # unsharded + shard 0
