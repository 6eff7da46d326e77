"""Parsing Pulsar's /metrics text: every label layout real brokers and pulsar-lite use."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from mqwatch.checks.pulsar.exposition import ExpositionError, parse_exposition
from mqwatch.checks.pulsar.deadletters import classify
from mqwatch.checks.pulsar.model import ClusterState, SubscriptionState

FULL = "persistent://public/default/orders"

# Real Pulsar, default: the partition is part of the topic name (TopicStats.writeTopicMetric).
REAL_PULSAR = f"""# TYPE pulsar_in_messages_total gauge
pulsar_in_messages_total{{cluster="standalone",namespace="public/default",topic="{FULL}-partition-0"}} 10
pulsar_in_messages_total{{cluster="standalone",namespace="public/default",topic="{FULL}-partition-1"}} 15
# TYPE pulsar_subscription_back_log gauge
pulsar_subscription_back_log{{cluster="standalone",namespace="public/default",topic="{FULL}-partition-0",subscription="billing"}} 4
pulsar_subscription_back_log{{cluster="standalone",namespace="public/default",topic="{FULL}-partition-1",subscription="billing"}} 6
# TYPE pulsar_subscription_consumers_count gauge
pulsar_subscription_consumers_count{{cluster="standalone",namespace="public/default",topic="{FULL}-partition-0",subscription="billing"}} 1
pulsar_subscription_consumers_count{{cluster="standalone",namespace="public/default",topic="{FULL}-partition-1",subscription="billing"}} 1
# TYPE pulsar_subscription_blocked_on_unacked_messages gauge
pulsar_subscription_blocked_on_unacked_messages{{cluster="standalone",namespace="public/default",topic="{FULL}-partition-1",subscription="billing"}} 1
# TYPE pulsar_msg_backlog gauge
pulsar_msg_backlog{{cluster="standalone",namespace="public/default"}} 10
"""

# splitTopicAndPartitionLabel=true: base topic plus a partition label.
SPLIT_LABEL = f"""# TYPE pulsar_subscription_back_log gauge
pulsar_subscription_back_log{{cluster="c",namespace="public/default",topic="{FULL}",partition="0",subscription="billing"}} 4
pulsar_subscription_back_log{{cluster="c",namespace="public/default",topic="{FULL}",partition="1",subscription="billing"}} 6
"""

# pulsar-lite: short topic names, counters typed as counters.
PULSAR_LITE = """# TYPE pulsar_in_messages_total counter
pulsar_in_messages_total{cluster="local",namespace="public/default",partition="-1",topic="orders"} 25
# TYPE pulsar_subscription_back_log gauge
pulsar_subscription_back_log{cluster="local",namespace="public/default",partition="-1",subscription="billing",topic="orders"} 10
"""


def test_partitions_in_the_topic_name_are_aggregated_under_the_full_name():
    state = parse_exposition(REAL_PULSAR)
    assert list(state.topics) == [FULL]
    t = state.topics[FULL]
    assert sorted(t.partitions) == [0, 1]
    assert sum(p.produced for p in t.partitions.values()) == 25
    assert [p.subscriptions["billing"].backlog for _, p in sorted(t.partitions.items())] == [4, 6]
    assert t.partitions[1].subscriptions["billing"].blocked and not t.partitions[0].subscriptions["billing"].blocked


def test_split_partition_label_layout():
    t = parse_exposition(SPLIT_LABEL).topics[FULL]
    assert sorted(t.partitions) == [0, 1]


def test_short_topic_label_becomes_full_name():
    t = parse_exposition(PULSAR_LITE).topics[FULL]
    assert t.partitions[-1].produced == 25
    assert t.partitions[-1].subscriptions["billing"].backlog == 10


@pytest.mark.parametrize("text", [
    'pulsar_subscription_back_log{topic="orders" 12\n',
    'pulsar_subscription_back_log{topic="orders",subscription="a"} twelve\n',
    '# TYPE pulsar_subscription_back_log gauge\npulsar_subscription_back_log{topic="orders\n',
])
def test_malformed_text_is_an_exposition_error(text):
    with pytest.raises(ExpositionError, match="unparsable exposition"):
        parse_exposition(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('pulsar_subscription_back_log{}="topic,orders 0123456789.\n#TYPE')), max_size=200))
def test_any_text_parses_or_fails_cleanly(text):
    try:
        parse_exposition("pulsar_subscription_back_log" + text)
    except ExpositionError:
        pass


def _state(**topics) -> ClusterState:
    state = ClusterState()
    for local, subs in topics.items():
        t = state.topic("persistent://public/default/" + local.replace("_", "-"))
        for s in subs:
            t.partition(-1).subscriptions[s] = SubscriptionState()
    return state


def test_dead_letter_topics_are_traced_to_topic_and_subscription():
    ns = "persistent://public/default/"
    state = _state(orders=["billing", "billing-eu"], orders_billing_eu_DLQ=[], orders_billing_RETRY=[],
                   audit_DLQ=[], payments=["audit"], stray_DLQ=[])
    found = classify(state.topics)
    eu = found[ns + "orders-billing-eu-DLQ"]  # the subscription name itself has a dash
    assert (eu.kind, eu.source, eu.consumer) == ("dlq", ns + "orders", "billing-eu")
    retry = found[ns + "orders-billing-RETRY"]
    assert (retry.kind, retry.source, retry.consumer) == ("retry", ns + "orders", "billing")
    older = found[ns + "audit-DLQ"]  # `<subscription>-DLQ` naming of older clients
    assert (older.kind, older.source, older.consumer) == ("dlq", ns + "payments", "audit")
    stray = found[ns + "stray-DLQ"]
    assert (stray.source, stray.consumer) == ("", "stray")
    assert ns + "orders" not in found
