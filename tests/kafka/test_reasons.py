"""Reading a dead letter's failure reason from Spring / Kafka Connect headers and JSON payloads."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mqwatch.checks.kafka.reasons import reason_of

CASES = [
    ("spring-cause-wins-over-the-wrapper",
     [("kafka_dlt-exception-fqcn", b"org.springframework.kafka.listener.ListenerExecutionFailedException"),
      ("kafka_dlt-exception-cause-fqcn", b"com.shop.InvalidOrder")], None, "com.shop.InvalidOrder"),
    ("spring-fqcn", [("kafka_dlt-exception-fqcn", b"java.lang.NullPointerException")], None,
     "java.lang.NullPointerException"),
    ("spring-message-only", [("kafka_dlt-exception-message", b"boom")], None, "boom"),
    ("connect-class", [("__connect.errors.exception.class.name", b"org.apache.kafka.connect.errors.DataException"),
                       ("__connect.errors.exception.message", b"x")], None,
     "org.apache.kafka.connect.errors.DataException"),
    ("class-wins-over-message-whatever-the-order",
     [("kafka_dlt-exception-message", b"order 7 bad"), ("kafka_dlt-exception-fqcn", b"com.shop.E")], None, "com.shop.E"),
    ("last-header-of-a-name-wins-like-kafka-lastHeader",
     [("kafka_dlt-exception-fqcn", b"com.First"), ("kafka_dlt-exception-fqcn", b"com.Second")], None, "com.Second"),
    ("no-headers-no-payload", [], None, "unknown"),
    ("empty-header-value-falls-through", [("kafka_dlt-exception-fqcn", b"")], None, "unknown"),
    ("null-header-value", [("kafka_dlt-exception-fqcn", None)], None, "unknown"),
    ("json-field", [], b'{"error": {"code": "E42"}}', "E42"),
    ("json-list-index", [], b'{"error": {"code": ["E1", "E2"]}}', "unknown"),
    ("json-field-missing", [], b'{"other": 1}', "unknown"),
    ("header-wins-over-json", [("kafka_dlt-exception-fqcn", b"com.H")], b'{"error": {"code": "E42"}}', "com.H"),
]


@pytest.mark.parametrize("name,headers,payload,expected", CASES, ids=[c[0] for c in CASES])
def test_reason_of(name, headers, payload, expected):
    reason, problems = reason_of(headers, payload, json_field="error.code")
    assert reason == expected
    assert problems == []


def test_configured_headers_are_tried_first():
    headers = [("kafka_dlt-exception-fqcn", b"com.shop.E"), ("x-reason", b"quota")]
    assert reason_of(headers, None, extra_headers=("x-reason",))[0] == "quota"


@pytest.mark.parametrize("value,problem", [
    (b"\xff\xfe\xfd", "not UTF-8"),
    (b"abc\x00def", "binary"),
])
def test_binary_header_is_skipped_with_a_problem(value, problem):
    reason, problems = reason_of([("kafka_dlt-exception-cause-fqcn", value),
                                  ("kafka_dlt-exception-fqcn", b"com.shop.Fallback")], None)
    assert reason == "com.shop.Fallback"
    assert len(problems) == 1 and "kafka_dlt-exception-cause-fqcn" in problems[0] and problem in problems[0]


def test_huge_header_is_cut_to_a_label_without_decoding_all_of_it():
    reason, problems = reason_of([("kafka_dlt-exception-message", "é".encode() * 2_000_000)], None)
    assert reason.startswith("ééé") and len(reason) <= 120 and problems == []


def test_payload_problems():
    assert reason_of([], b"\xff not json", json_field="error")[1] == ["payload is not JSON"]
    assert reason_of([], b'{"error": "x"}' + b" " * 100, json_field="error", max_payload_bytes=10) == ("unknown", [])


@given(st.lists(st.tuples(st.sampled_from(["kafka_dlt-exception-fqcn", "kafka_dlt-exception-cause-fqcn",
                                           "__connect.errors.exception.class.name", "x"]),
                          st.one_of(st.none(), st.binary(max_size=3000))), max_size=6),
       st.one_of(st.none(), st.binary(max_size=3000)))
def test_any_headers_and_payload_give_a_bounded_label(headers, payload):
    reason, problems = reason_of(headers, payload, json_field="a.b")
    assert 0 < len(reason) <= 120
    assert not any(ord(ch) < 32 for ch in reason)
