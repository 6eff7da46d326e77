"""Issue 12: Pulsar totals summed over brokers must not invent messages when one broker's
counter resets or its /metrics cannot be read. Two real pulsar-lite brokers both serve a
DLQ topic of the same name, so the check sums the two brokers' msgInCounter for it, as it
does for a topic whose partitions live on different brokers of one cluster."""

from __future__ import annotations

import pulsar
import pytest

from mqwatch.checks.pulsar.embedded import start_pulsar_lite
from tests.helpers import collect_once, make_check, wait_until
from tests.pulsar.conftest import connect
from tests.pulsar.workload import wait_metric

NS = "persistent://public/default/"


def produce(broker, topic: str, n: int, expected: int | None = None) -> None:
    """Publish n messages and wait until the broker's /metrics counts `expected` (default n)."""
    client = connect(broker)
    producer = client.create_producer(topic, batching_enabled=True, batching_max_messages=500,
                                      block_if_queue_full=True)
    results = []
    for _ in range(n):
        producer.send_async(b"dead letter", lambda res, _msg: results.append(res))
    producer.flush()
    wait_until(lambda: len(results) == n, message=f"{n} sends acknowledged")
    assert all(r == pulsar.Result.Ok for r in results), set(results)
    client.close()
    wait_metric(broker.extra["metrics_url"], "pulsar_in_messages_total", expected if expected is not None else n, topic=topic)


@pytest.fixture
def two_brokers():
    brokers = [start_pulsar_lite(), start_pulsar_lite()]
    yield brokers
    for b in brokers:
        b.resume()
        b.stop()


def totals(check, *dlqs):
    snap = collect_once(check)
    found = {labels["dlq"]: v for labels, v in snap.samples("mqwatch_dlq_messages_total")}
    produced = {labels["queue"]: v for labels, v in snap.samples("mqwatch_queue_produced_total")}
    return snap, [found.get(NS + d) for d in dlqs], [produced.get(NS + d) for d in dlqs]


def test_one_broker_failing_or_restarting_invents_no_dead_letters(two_brokers):
    a, b = two_brokers
    produce(a, "orders-billing-DLQ", 1000)
    produce(b, "orders-billing-DLQ", 2000)
    produce(a, "payments-billing-DLQ", 3)
    produce(b, "payments-billing-DLQ", 4)
    _, check = make_check({"kind": "pulsar", "name": "two", "request_timeout": "1s",
                           "metrics_url": [a.extra["metrics_url"], b.extra["metrics_url"]]})
    seen = []
    for _ in range(2):
        snap, dlq, produced = totals(check, "orders-billing-DLQ", "payments-billing-DLQ")
        assert snap.ok and dlq == [3000, 7] and produced == [3000, 7]
        seen.append(dlq)

    a.pause()  # A's /metrics stops answering: the sum falls to 2000 (was exported as 5000 arrivals)
    for _ in range(2):
        snap, dlq, produced = totals(check, "orders-billing-DLQ", "payments-billing-DLQ")
        assert snap.ok and ("timeout" in {r for r, _ in snap.errors})
        assert dlq == [3000, 7] and produced == [3000, 7]
        seen.append(dlq)

    # B restarts on the same ports with its counters at 0, while A is still hung.
    b.stop()
    two_brokers[1] = b = start_pulsar_lite(port=b.port, metrics_port=b.extra["metrics_port"])
    snap, dlq, _ = totals(check, "orders-billing-DLQ", "payments-billing-DLQ")
    seen.append(dlq)
    a.resume()
    produce(b, "payments-billing-DLQ", 1)  # the one real new dead letter
    snap, dlq, _ = totals(check, "orders-billing-DLQ", "payments-billing-DLQ")
    assert snap.ok and not snap.errors
    assert dlq == [3000, 8], "8 true arrivals (3 + 4 + 1), counted as 19 before"
    seen.append(dlq)
    for column in zip(*seen):
        values = [v for v in column if v is not None]
        assert values == sorted(values), f"a total went down: {seen}"
    check.close()
