"""Issue 12, property-based: every decoder of dead-letter payloads, headers, job records and
stream ids returns a value or None on arbitrary bytes, never raises, and stays bounded in
time and memory on hostile input (a zlib bomb in an RQ traceback)."""

from __future__ import annotations

import base64
import json
import time
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from mqwatch.agent.dlq import MAX_REASON_LENGTH, normalize_reason
from mqwatch.checks.kafka.reasons import header_text, original_topic, reason_of as kafka_reason
from mqwatch.checks.pulsar.sampler import reason_of as pulsar_reason
from mqwatch.checks.redis import rq, sidekiq
from mqwatch.checks.redis.client import label
from mqwatch.checks.redis.keyspace import _stream_reason, reason_of as redis_reason
from mqwatch.checks.redis.streams import parse_id

# Arbitrary bytes, and bytes shaped like what the decoders look for (JSON, zlib, base64).
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["error", "reason", "exception", "error_class", "queue",
                                                             "type", "class", "name", "enqueued_at", "x"]), inner,
                                            max_size=4)),
    max_leaves=8,
).map(lambda d: json.dumps(d).encode())
payloads = st.one_of(st.binary(max_size=300), json_like, json_like.map(zlib.compress),
                     json_like.map(lambda b: base64.b64encode(zlib.compress(b))), st.text(max_size=100))


@settings(max_examples=400, deadline=None)
@given(payloads, st.integers(0, 1000))
def test_redis_decoders_never_raise(raw, cap):
    for fn in (redis_reason, sidekiq._job, rq.exc_text, rq.exception_class):
        fn(raw, cap)
        fn(raw)
    sidekiq.job_latency(raw, time.time())
    rq.result_exc_string({b"exc_string": raw}, cap)
    rq.parse_time(raw)
    _stream_reason({b"payload": raw, raw[:8] if isinstance(raw, bytes) else b"k": raw}, cap)
    parse_id(raw)
    assert isinstance(label(raw), str)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.text(max_size=40), st.sampled_from(["kafka_dlt-exception-fqcn",
                                                                          "kafka_dlt-original-topic",
                                                                          "__connect.errors.topic"])),
                          st.one_of(st.none(), payloads)), max_size=5),
       st.one_of(st.none(), payloads), st.sampled_from(["", "error", "error.reason", "a.b.c"]))
def test_kafka_header_and_payload_decoders_never_raise(headers, payload, json_field):
    reason, problems = kafka_reason(headers, payload, json_field=json_field, max_payload_bytes=200)
    assert isinstance(reason, str) and len(reason) <= MAX_REASON_LENGTH and isinstance(problems, list)
    original_topic(headers)
    for _, value in headers:
        try:
            header_text(value)
        except ValueError:
            pass  # documented: says why a header is not text


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=5), st.text(max_size=20))
def test_pulsar_property_reason_never_raises(properties, reason_property):
    assert isinstance(normalize_reason(pulsar_reason(properties, reason_property)), str)


def test_rq_traceback_zlib_bomb_is_not_inflated():
    bomb = zlib.compress(b"A" * 200_000_000 + b"\nZeroDivisionError: division by zero\n", 9)
    assert len(bomb) < 300_000
    t0 = time.monotonic()
    assert rq.exception_class(bomb, 65536) is None  # over the cap once decompressed: not parsed
    assert rq.result_exc_string({b"exc_string": base64.b64encode(bomb)}, 65536) is None
    assert time.monotonic() - t0 < 1.0
    small = zlib.compress(b"Traceback...\nZeroDivisionError: division by zero\n")
    assert rq.exception_class(small, 65536) == "ZeroDivisionError"


def test_oversized_payloads_are_not_parsed():
    doc = json.dumps({"error": "Timeout", "pad": "x" * 1000}).encode()
    assert redis_reason(doc, 2000) == "Timeout" and redis_reason(doc, 100) is None
    job = json.dumps({"queue": "mail", "error_class": "Net::ReadTimeout", "pad": "x" * 1000}).encode()
    assert sidekiq._job(job, 2000)["queue"] == "mail" and sidekiq._job(job, 100) is None
