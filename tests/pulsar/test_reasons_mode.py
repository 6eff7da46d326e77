"""`reasons: class | message` on the Pulsar check against pulsar-lite: a failure reason
property carrying a message is counted as `message_hidden` unless the check asks for it."""

from __future__ import annotations

from tests.helpers import collect_once, make_check, unique
from tests.pulsar.workload import wait_metric

NS = "persistent://public/default/"


def test_dead_letter_reason_messages_are_opt_in(pulsar_lite, pulsar_client):
    source = unique("signups")
    dlq = f"{source}-worker-DLQ"
    producer = pulsar_client.create_producer(NS + dlq, batching_enabled=False)
    for error in ("invalid e-mail dave@example.com", "ValidationError: dave@example.com is taken", "ValidationError"):
        producer.send(b"{}", properties={"error": error})
    producer.close()
    wait_metric(pulsar_lite.extra["metrics_url"], "pulsar_in_messages_total", 3, topic=dlq)

    def reasons(**extra):
        _, check = make_check({"kind": "pulsar", "name": "events", "metrics_url": pulsar_lite.extra["metrics_url"],
                               "service_url": pulsar_lite.extra["service_url"],
                               "dlq_sampling": {"enabled": True, "reason_property": "error"}, **extra})
        try:
            snap = collect_once(check)
        finally:
            check.close()
        assert snap.ok, snap.error
        return {lbl["reason"]: v for lbl, v in snap.samples("mqwatch_dlq_reason_messages") if lbl["dlq"] == NS + dlq}

    assert reasons() == {"message_hidden": 1, "ValidationError": 2}
    assert reasons(reasons="message") == {"invalid e-mail dave@example.com": 1,
                                          "ValidationError: dave@example.com is taken": 1, "ValidationError": 1}
