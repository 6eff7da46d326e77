"""Drive a real pulsar-lite broker: subscriptions with known backlogs, nacked dead letters."""

from __future__ import annotations

import time

import pulsar
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_until


def subscribe_and_leave(client, topic: str, subscription: str) -> None:
    """Create a durable subscription with no consumer left on it."""
    client.subscribe(topic, subscription, consumer_type=pulsar.ConsumerType.Shared).close()


def produce(client, topic: str, n: int, **kwargs) -> None:
    producer = client.create_producer(topic, batching_enabled=False, **kwargs)
    for i in range(n):
        producer.send(f"order-{i}".encode())
    producer.close()


def raw_samples(metrics_url: str) -> list:
    """Every sample of the broker's /metrics, read with prometheus-client's parser alone."""
    text = requests.get(metrics_url, timeout=5).text
    return [s for f in text_string_to_metric_families(text) for s in f.samples]


def metric_value(metrics_url: str, name: str, **labels):
    for s in raw_samples(metrics_url):
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def wait_metric(metrics_url: str, name: str, expected, **labels) -> None:
    wait_until(lambda: metric_value(metrics_url, name, **labels) == expected, timeout=15,
               message=f"{name}{labels} == {expected}")


def nack_into_dlq(client, topic: str, subscription: str, n: int) -> None:
    """Produce n messages and nack every delivery until the client's DLQ policy moves them."""
    consumer = client.subscribe(
        topic, subscription, consumer_type=pulsar.ConsumerType.Shared,
        dead_letter_policy=pulsar.ConsumerDeadLetterPolicy(max_redeliver_count=1),
        negative_ack_redelivery_delay_ms=20,
    )
    produce(client, topic, n)
    deliveries, deadline = 0, time.monotonic() + 15
    while deliveries < 2 * n and time.monotonic() < deadline:
        try:
            msg = consumer.receive(timeout_millis=300)
        except pulsar.Timeout:
            continue
        consumer.negative_acknowledge(msg)
        deliveries += 1
    # A third receive round lets the client publish the last dead letters.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        try:
            consumer.negative_acknowledge(consumer.receive(timeout_millis=200))
        except pulsar.Timeout:
            pass
    consumer.close()


def metric_sum(metrics_url: str, name: str, **labels) -> float:
    return sum(s.value for s in raw_samples(metrics_url)
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))
