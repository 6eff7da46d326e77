"""Pulsar part of `mqwatch demo`: deliveries with a dead-letter policy and a subscription left behind.

- `delivery-service` (Shared, dead-letter policy: one redelivery) rejects some deliveries;
  after the redelivery they land in `deliveries-delivery-service-DLQ` with their reason.
- `notifications` subscribed once and went away: its backlog grows with every delivery.
- deliveries whose courier is busy are re-queued to `deliveries-delivery-service-RETRY` and
  retried a few seconds later (what Java clients' `reconsumeLater` does; the Python client has
  no retry topic of its own, so the demo publishes there itself).
"""

from __future__ import annotations

import logging
import random

from mqwatch.agent.demo import DemoPart, Workload
from mqwatch.checks.pulsar.embedded import start_pulsar_lite

TOPIC = "persistent://public/default/deliveries"
RETRY_TOPIC = f"{TOPIC}-delivery-service-RETRY"
RETRY_DELAY_SECONDS = 3
log = logging.getLogger("mqwatch.demo.pulsar")


def start_broker():
    return start_pulsar_lite()


def start_workload(broker) -> DemoPart:
    import pulsar

    client = pulsar.Client(broker.extra["service_url"], logger=log, operation_timeout_seconds=10)
    workload = Workload("pulsar")
    stop = workload.stopping
    rng = random.Random(11)
    try:
        client.subscribe(TOPIC, "notifications", consumer_type=pulsar.ConsumerType.Shared).close()
        consumer = client.subscribe(
            TOPIC, "delivery-service", consumer_type=pulsar.ConsumerType.Shared,
            negative_ack_redelivery_delay_ms=500,
            dead_letter_policy=pulsar.ConsumerDeadLetterPolicy(max_redeliver_count=1))
        producer = client.create_producer(TOPIC)
        retry_producer = client.create_producer(RETRY_TOPIC)
        retry_consumer = client.subscribe(RETRY_TOPIC, "delivery-service", consumer_type=pulsar.ConsumerType.Shared)
    except Exception:
        client.close()
        raise

    def dispatch():
        n = 0
        while not stop.wait(0.5):
            n += 1
            reason = rng.choice(["AddressNotFound", "CourierTimeout"]) if n % 6 == 0 else ""
            producer.send(f'{{"order_id": {n}, "courier": "C{n % 4}"}}'.encode(),
                          properties={"reject_reason": reason} if reason else None)

    def deliver():
        while not stop.is_set():
            try:
                msg = consumer.receive(timeout_millis=500)
            except Exception:
                continue
            if msg.properties().get("reject_reason"):
                consumer.negative_acknowledge(msg)
            elif rng.random() < 0.2:  # courier busy: try again later
                retry_producer.send(msg.data(), properties={"RECONSUMETIMES": "1"})
                consumer.acknowledge(msg)
            else:
                consumer.acknowledge(msg)

    def retry_later():
        import time

        while not stop.is_set():
            try:
                msg = retry_consumer.receive(timeout_millis=500)
            except Exception:
                continue
            wait = msg.publish_timestamp() / 1000 + RETRY_DELAY_SECONDS - time.time()
            if wait > 0 and stop.wait(wait):
                return
            retry_consumer.acknowledge(msg)

    workload.start(dispatch, deliver, retry_later)

    def stop_all():
        workload.stop()
        client.close()

    return DemoPart(
        name=f"pulsar (pulsar-lite at {broker.extra['service_url']})",
        checks=[{"kind": "pulsar", "name": "events", "metrics_url": broker.extra["metrics_url"],
                 "service_url": broker.extra["service_url"],
                 # the dead-letter policy keeps a message's properties: its reason travels with it
                 "dlq_sampling": {"enabled": True, "reason_property": "reject_reason"}}],
        describe=[
            f"2 deliveries/s into `{TOPIC}`",
            "`delivery-service` dead-letters rejected deliveries and retries busy-courier ones; "
            "`notifications` stopped consuming",
        ],
        stop=stop_all,
        urls={"broker metrics": broker.extra["metrics_url"]},
    )
