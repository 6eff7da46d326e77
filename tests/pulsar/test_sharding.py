"""`--shard I/N` on Pulsar's admin API (the FIXTURE server, admin_fixture.py: pulsar-lite has no
admin API): shards ask the stats of their own topics only (plus the siblings that name their
DLQs' sources), and together export what one unsharded agent does; broker health once."""

from __future__ import annotations

from mqwatch.agent.sharding import Shard, owner
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


def test_metrics_path_on_a_real_broker_three_shards_parse_their_own_topics(pulsar_lite, pulsar_client):
    """pulsar-lite's /metrics: each shard parses only its topics' lines; together the shards
    export what one unsharded agent does (a DLQ labelled with its source on another shard too)."""
    from mqwatch.checks.pulsar.exposition import parse_exposition, topics_in
    from tests.helpers import unique
    from tests.pulsar.workload import nack_into_dlq, produce, subscribe_and_leave, wait_metric

    url = pulsar_lite.extra["metrics_url"]
    prefix = unique("shardp")
    topics = [t.removeprefix(NS) for t in names_covering(NS + prefix, 4, 1, SHARDS)]
    # the DLQ's topic first, chosen so that the DLQ and its source are on two shards
    crossing = next(f"{prefix}-x{i}" for i in range(1000)
                    if owner(NS + f"{prefix}-x{i}-worker-DLQ", SHARDS) != owner(NS + f"{prefix}-x{i}", SHARDS))
    topics.insert(0, crossing)
    for i, t in enumerate(topics):
        subscribe_and_leave(pulsar_client, t, "billing")
        produce(pulsar_client, t, i + 1)
    nack_into_dlq(pulsar_client, topics[0], "worker", 2)
    wait_metric(url, "pulsar_in_messages_total", 2, topic=f"{topics[0]}-worker-DLQ")
    for i, t in enumerate(topics):
        backlog = i + 1 + (2 if i == 0 else 0)  # nack_into_dlq produced 2 more to topics[0]
        wait_metric(url, "pulsar_subscription_back_log", backlog, topic=t, subscription="billing")

    check = {"kind": "pulsar", "name": "events", "metrics_url": url, "topics": {"include": [f"/{prefix}-"]}}
    whole, parts = collect_sharded(check, SHARDS)
    where = assert_union_equals(whole, parts)
    dlq = NS + f"{topics[0]}-worker-DLQ"
    assert whole.value("mqwatch_dlq_messages_total", dlq=dlq, source=NS + topics[0], consumer="worker") == 2
    assert all(Shard(i, SHARDS).owns(dict(lbl).get("queue") or dict(lbl)["dlq"])
               for (name, lbl), i in where.items() if name != "mqwatch_brokers"
               and not name.startswith("mqwatch_pulsar_broker"))

    import requests

    text = requests.get(url, timeout=5).text
    mine = {t for t in topics_in(text) if Shard(1, SHARDS).owns(t)}
    state = parse_exposition(text, topics=mine)
    assert set(state.topics) == mine
