"""Kafka part of `mqwatch demo`: a tansu broker with an order pipeline in three states.

- `inventory` consumes orders as fast as they come (lag stays near zero),
- `analytics` commits slower than orders arrive (lag grows),
- `fraud-check` committed once and stopped (no members, lag grows with every order),
- `billing` starts 20 s late, then catches up at 9 orders/s against 5 produced (a finite drain
  ETA, then 0), and every 90 s replays the last 40 orders of each partition (reprocessed messages).

Every tenth order fails in a (simulated) Spring listener and is dead-lettered to
`orders.DLT` with Spring's exception headers, and the end-to-end canary runs.
"""

from __future__ import annotations

import logging
import time

from mqwatch.agent.demo import DemoPart, Workload
from mqwatch.checks.kafka.embedded import start_tansu

ORDERS, PAYMENTS, ORDERS_DLT = "orders", "payments", "orders.DLT"
# What a Spring DeadLetterPublishingRecoverer writes: the wrapper, the real cause, the message.
DEAD_LETTER_CAUSES = ("com.shop.orders.InvalidSkuException", "com.shop.payments.PaymentTimeoutException")
ORDERS_PER_SECOND = 5

log = logging.getLogger("mqwatch.demo.kafka")


def start_broker():
    return start_tansu()


def start_workload(broker) -> DemoPart:
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = broker.address
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": log})
    for f in admin.create_topics([NewTopic(ORDERS, 3, 1), NewTopic(PAYMENTS, 1, 1), NewTopic(ORDERS_DLT, 1, 1)]).values():
        f.result(timeout=10)
    workload = Workload("kafka")
    stop = workload.stopping
    # tansu counts one offset per record batch: one record per batch keeps counts honest.
    producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 1, "linger.ms": 0, "logger": log})

    def produce():
        n = 0
        while not stop.is_set():
            producer.produce(ORDERS, key=f"order-{n}", value=f'{{"order_id": {n}, "sku": "SKU-{n % 17}"}}', partition=n % 3)
            if n % 2 == 0:
                producer.produce(PAYMENTS, key=f"order-{n}", value=b"paid", partition=0)
            if n % 10 == 0:
                # two thirds bad SKUs, one third payment timeouts
                cause = DEAD_LETTER_CAUSES[1] if (n // 10) % 3 == 2 else DEAD_LETTER_CAUSES[0]
                producer.produce(ORDERS_DLT, key=f"order-{n}", value=f'{{"order_id": {n}}}', partition=0, headers=[
                    ("kafka_dlt-original-topic", ORDERS.encode()),
                    ("kafka_dlt-exception-fqcn", b"org.springframework.kafka.listener.ListenerExecutionFailedException"),
                    ("kafka_dlt-exception-cause-fqcn", cause.encode()),
                    ("kafka_dlt-exception-message", f"order {n} could not be processed".encode()),
                ])
            producer.poll(0)
            n += 1
            stop.wait(1.0 / ORDERS_PER_SECOND)
        producer.flush(5)

    def committer(group: str, per_second: float, start_after: float = 0.0, rewind_every: float = 0.0,
                  rewind_by: int = 0):
        """An assign()-style consumer that commits `per_second` records per second on every partition;
        with `rewind_every`, it moves each partition back by `rewind_by` that often (a replay)."""
        if stop.wait(start_after):
            return
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "logger": log})
        positions = {p: 0 for p in range(3)}
        rewound_at = time.monotonic()
        try:
            while not stop.wait(1.0):
                rewind = rewind_every and time.monotonic() - rewound_at >= rewind_every
                if rewind:
                    rewound_at = time.monotonic()
                for p in positions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(ORDERS, p), timeout=2)
                    positions[p] = max(0, positions[p] - rewind_by) if rewind else min(high, positions[p] + per_second)
                consumer.commit(offsets=[TopicPartition(ORDERS, p, int(o)) for p, o in positions.items()], asynchronous=False)
        except Exception as e:
            log.warning("demo_committer_failed group=%s error=%r", group, e)
        finally:
            consumer.close()

    def fast_consumer():
        consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": "inventory", "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000, "max.poll.interval.ms": 10000, "logger": log,
        })
        consumer.subscribe([ORDERS])
        try:
            while not stop.is_set():
                consumer.poll(0.5)
        finally:
            consumer.close()

    # fraud-check committed its position at the start, then its service died.
    Consumer({"bootstrap.servers": bootstrap, "group.id": "fraud-check", "logger": log}).commit(
        offsets=[TopicPartition(ORDERS, p, 0) for p in range(3)], asynchronous=False)
    def analytics():
        committer("analytics", 1)

    def billing():
        committer("billing", 3, start_after=20.0, rewind_every=90.0, rewind_by=40)

    workload.start(produce, fast_consumer, analytics, billing)

    return DemoPart(
        name=f"kafka (tansu at {bootstrap})",
        checks=[{"kind": "kafka", "name": "shop", "bootstrap_servers": bootstrap, "granularity": "partition",
                 "canary": {"enabled": True, "interval": "5s", "replication_factor": 1}}],
        describe=[
            f"{ORDERS_PER_SECOND} orders/s into `{ORDERS}` (3 partitions) and payments into `{PAYMENTS}`",
            "group `inventory` keeps up, `analytics` falls behind, `fraud-check` has stopped, `billing` catches up "
            "and replays the last 40 orders of each partition every 90s",
            f"every tenth order is dead-lettered to `{ORDERS_DLT}` with Spring's exception headers",
            "the end-to-end canary produces to and consumes from `mqwatch-canary` every 5s",
        ],
        stop=workload.stop,
    )
