"""`--shard I/N` on tansu: three shards together export exactly what one unsharded agent does,
each asks the broker only for its own topics' offsets, and cluster-wide series come once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mqwatch.agent.sharding import Shard
from tests.helpers import (
    collect_once, kafka_commit, kafka_create_topics, kafka_produce, make_check, unique,
)
from tests.kafka.test_lag import prom_samples
from tests.sharding import assert_union_equals, collect_sharded, names_covering

SHARDS = 3
CLUSTER_WIDE = ("mqwatch_brokers", "mqwatch_kafka_controller_id", "mqwatch_kafka_under_replicated_partitions",
                "mqwatch_kafka_offline_partitions")


def _scenario(bootstrap: str):
    prefix = unique("shard")
    topics = names_covering(f"{prefix}-t", 9, 2, SHARDS)
    groups = names_covering(f"{prefix}-g", 4, 1, SHARDS)
    kafka_create_topics(bootstrap, {t: 2 for t in topics})
    for i, t in enumerate(topics):
        kafka_produce(bootstrap, t, {0: 3 + i % 4, 1: 2})
    for gi, g in enumerate(groups):
        # each group on a different slice of the topics, some caught up, some behind
        mine = topics[gi % 3::3]  # never empty: at least 9 topics
        kafka_commit(bootstrap, g, {(t, p): 1 + gi % 2 for t in mine for p in (0, 1)})
    return prefix, topics, groups


@pytest.mark.parametrize("cycles", [1, 2], ids=["first cycle", "running"])
def test_three_shards_export_what_one_agent_does(kafka_bootstrap, cycles):
    prefix, topics, groups = _scenario(kafka_bootstrap)
    scope = {"include": [f"^{prefix}"]}
    check = {"kind": "kafka", "name": "shop", "bootstrap_servers": kafka_bootstrap, "topics": scope,
             "groups": scope, "granularity": "partition", "dlq": {"enabled": False}}
    # the first cycle fetches each group's offsets whole; later ones only the shard's partitions it commits on
    whole, parts = collect_sharded(check, SHARDS, cycles)
    where = assert_union_equals(whole, parts)

    # the scenario's lag is all there, so the comparison compared something
    lag = {lbl["queue"] + "/" + lbl["consumer"] for lbl, _ in whole.samples("mqwatch_consumer_lag_messages")}
    assert len(lag) == sum(len(topics[gi % 3::3]) for gi in range(len(groups)))
    for (name, labels), shard in where.items():
        lbl = dict(labels)
        if name in CLUSTER_WIDE:
            assert shard == 0, (name, lbl)
        elif name in ("mqwatch_consumer_members", "mqwatch_consumer_state"):
            assert Shard(shard, SHARDS).owns(lbl["consumer"]), (name, lbl)
        elif "queue" in lbl:
            assert Shard(shard, SHARDS).owns(lbl["queue"]), (name, lbl, shard)
    assert all(any(k[0] == "mqwatch_consumer_lag_messages" for k in where if where[k] == i) for i in range(SHARDS))


def test_a_shard_asks_only_for_its_own_offsets(kafka_bootstrap):
    prefix, topics, groups = _scenario(kafka_bootstrap)
    from mqwatch.checks.kafka.client import KafkaClient, base_config

    client = KafkaClient(base_config([kafka_bootstrap], {}, 10.0), 10.0)
    try:
        shard = Shard(1, SHARDS)
        view = client.fetch_view(lambda g: g.startswith(prefix), lambda t: t.startswith(prefix), shard)
    finally:
        client.close()
    owned = {t for t in topics if shard.owns(t)}
    assert set(view.topics) == owned
    assert {t for t, _ in view.end_offsets} == owned and {t for t, _ in view.start_offsets} == owned
    committed = {t for g in view.groups.values() for t, _ in g.offsets}
    assert committed and committed <= owned
    assert set(view.groups) == set(groups)  # every group's state is known: status needs it on every shard
    assert set(view.health) == set(topics)  # metadata is whole: shard 0 exports replication health


def test_a_group_committing_on_a_new_topic_reaches_its_shard_within_the_refresh(kafka_bootstrap):
    from mqwatch.checks.kafka.grouptopics import REFRESH_CYCLES

    prefix, topics, groups = _scenario(kafka_bootstrap)
    group = groups[1]  # commits on topics[1::3]
    new = next(t for t in (f"{prefix}-t-new{i}" for i in range(100)) if Shard(0, SHARDS).owns(t))
    kafka_create_topics(kafka_bootstrap, {new: 2})
    kafka_produce(kafka_bootstrap, new, {0: 3, 1: 2})
    scope = {"include": [f"^{prefix}"]}
    _, check = make_check({"kind": "kafka", "name": "shop", "bootstrap_servers": kafka_bootstrap, "topics": scope,
                           "groups": scope, "time_lag": "off"})
    check.shard = Shard(0, SHARDS)
    try:
        def lag_on_new():
            snap = collect_once(check)
            assert snap.ok, snap.error
            return snap.value("mqwatch_consumer_lag_messages", queue=new, consumer=group)

        assert lag_on_new() is None
        kafka_commit(kafka_bootstrap, group, {(new, 0): 1, (new, 1): 1})
        seen = [lag_on_new() for _ in range(REFRESH_CYCLES)]
        assert any(v is not None for v in seen), seen
        assert seen[-1] == (3 - 1) + (2 - 1)  # and stays: it is learnt
    finally:
        check.close()


def test_check_prom_with_shard_auto_from_a_statefulset_hostname(kafka_bootstrap, tmp_path):
    prefix, topics, _ = _scenario(kafka_bootstrap)
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text(f"""
agent:
  shard: 0/5   # the flag wins over it
checks:
  - kind: kafka
    name: shop
    bootstrap_servers: {kafka_bootstrap}
    topics: {{include: ["^{prefix}"]}}
    groups: {{include: ["^{prefix}"]}}
""")

    def run(*args, hostname="mqwatch-2"):
        env = {**os.environ, "HOSTNAME": hostname}
        env.pop("MQWATCH_SHARD", None)
        return subprocess.run([sys.executable, "-m", "mqwatch.agent", "check", "-c", str(cfg), "--format", "prom", *args],
                              capture_output=True, text=True, timeout=60, env=env)

    done = run("--shard", f"auto/{SHARDS}")
    assert done.returncode == 0, done.stderr
    got = prom_samples(done.stdout)
    assert got[("mqwatch_shard_info", (("count", "3"), ("index", "2")))] == 1
    queues = {dict(lbl).get("queue") for name, lbl in got if name == "mqwatch_kafka_topic_partitions"}
    assert queues == {t for t in topics if Shard(2, SHARDS).owns(t)}
    assert not any(name == "mqwatch_brokers" for name, _ in got)  # shard 2 is not shard 0

    bad = run("--shard", f"auto/{SHARDS}", hostname="mqwatch")
    assert bad.returncode == 2
    assert "HOSTNAME is 'mqwatch'" in bad.stderr and f"0/{SHARDS}" in bad.stderr
