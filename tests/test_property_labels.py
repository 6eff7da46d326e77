"""Issue 12, property-based: any label value mqwatch takes from outside (Redis key names that
are not UTF-8 or carry quotes, backslashes and newlines; topic names; failure reasons) comes out
of /metrics so that prometheus-client's parser reads back exactly the value the check emitted,
and `promtool check metrics` (Prometheus' own parser and linter) accepts the exposition."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from mqwatch.agent.dlq import normalize_reason
from mqwatch.agent.exporter import Exporter
from mqwatch.agent.metrics import DLQ_MESSAGES, DLQ_MESSAGES_TOTAL, DLQ_REASON_MESSAGES, QUEUE_MESSAGES
from mqwatch.agent.snapshot import SnapshotBuilder
from mqwatch.checks.redis.client import label

DEFS = (QUEUE_MESSAGES, DLQ_MESSAGES, DLQ_MESSAGES_TOTAL, DLQ_REASON_MESSAGES)
NASTY = ['a"b', "back\\slash", "new\nline", "\\n", '\\"', '"', "\\", "\r\n", "\x00", "\u2028", "\ufffd", "é",
         "{x=\"y\"}", "=", ",", " ", "#", "\t", "\x7f", "\\\\\\"]
redis_keys = st.one_of(st.binary(max_size=30), st.lists(st.sampled_from(NASTY), max_size=4).map("".join).map(str.encode)
                       ).map(label)
topics = st.one_of(st.text(max_size=40), st.sampled_from(["persistent://t/ns/orders-partition-0", "orders.DLT", "a/b"]))
reasons = st.one_of(st.binary(max_size=200), st.text(max_size=200)).map(normalize_reason)


def exposition(queues, dlqs) -> tuple[str, list[tuple[str, dict]]]:
    """Publish a Redis-like and a Pulsar-like snapshot; return the body and what was emitted."""
    exporter = Exporter(process_metrics=False)
    emitted = []
    redis = SnapshotBuilder("redis", 'cache "main"\\', DEFS)
    for q in queues:
        redis.add(QUEUE_MESSAGES.name, 1, queue=q)
        emitted.append((QUEUE_MESSAGES.name, {"system": "redis", "cluster": 'cache "main"\\', "queue": q}))
    pulsar = SnapshotBuilder("pulsar", "events", DEFS)
    for dlq, reason in dlqs:
        pulsar.add(DLQ_MESSAGES_TOTAL.name, 3, dlq=dlq, source=dlq)
        pulsar.add(DLQ_REASON_MESSAGES.name, 2, dlq=dlq, reason=reason)
        emitted.append((DLQ_MESSAGES_TOTAL.name, {"system": "pulsar", "cluster": "events", "dlq": dlq, "source": dlq}))
        emitted.append((DLQ_REASON_MESSAGES.name, {"system": "pulsar", "cluster": "events", "dlq": dlq, "reason": reason}))
    for b in (redis, pulsar):
        exporter.publish(b.build(1.0, 0.1))
    return exporter.body().decode("utf-8"), emitted


def parsed(body: str) -> set:
    return {(s.name, frozenset(s.labels.items())) for f in text_string_to_metric_families(body) for s in f.samples}


@settings(max_examples=300, deadline=None)
@given(st.lists(redis_keys, max_size=6, unique=True),
       st.lists(st.tuples(topics, reasons), max_size=4, unique_by=lambda t: t[0]))
def test_any_label_value_reads_back_identically(queues, dlqs):
    body, emitted = exposition(queues, dlqs)
    series = parsed(body)
    for name, labels in emitted:
        # An empty label value is the same as no label in Prometheus' data model.
        want = frozenset((k, v) for k, v in labels.items() if v != "")
        assert (name, want) in series or (name, frozenset(labels.items())) in series, (name, labels)


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool is not installed (apt-get install prometheus)")
@settings(max_examples=4, deadline=None)
@given(st.lists(redis_keys, min_size=50, max_size=80, unique=True),
       st.lists(st.tuples(topics, reasons), min_size=30, max_size=50, unique_by=lambda t: t[0]))
def test_promtool_accepts_the_exposition_of_any_label_values(queues, dlqs):
    body, _ = exposition(queues, dlqs)
    proc = subprocess.run(["promtool", "check", "metrics"], input=body.encode(), capture_output=True, timeout=30)
    assert proc.returncode == 0, (proc.stdout + proc.stderr).decode()[:2000]
