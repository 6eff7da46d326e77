"""mqwatch.agent.dlq: bounded reason counts, table-driven (arrivals: tests/test_counters.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from mqwatch.agent.dlq import MAX_REASON_LENGTH, OTHER, UNKNOWN, ReasonCounts, normalize_reason

REASON_CASES = [
    ("none-is-unknown", None, UNKNOWN),
    ("blank-is-unknown", "   ", UNKNOWN),
    ("text-is-kept", "java.lang.IllegalStateException", "java.lang.IllegalStateException"),
    ("control-characters-become-spaces", "bad\nline\x00here", "bad line here"),
    ("bytes-are-decoded", b"com.shop.E", "com.shop.E"),
    ("invalid-utf8-is-replaced", b"\xffabc", "\ufffdabc"),
    ("numbers-become-text", 503, "503"),
]


@pytest.mark.parametrize("name,raw,expected", REASON_CASES, ids=[c[0] for c in REASON_CASES])
def test_normalize_reason(name, raw, expected):
    assert normalize_reason(raw) == expected


@given(st.one_of(st.binary(max_size=5000), st.text(max_size=5000)))
def test_normalized_reasons_are_short_printable_labels(raw):
    r = normalize_reason(raw)
    assert 0 < len(r) <= MAX_REASON_LENGTH
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in r)


def test_reasons_keep_the_top_k_and_sum_the_rest_as_other():
    rc = ReasonCounts(top_k=2)
    for reason, n in (("A", 5), ("B", 3), ("C", 2), ("D", 1)):
        rc.add("dlq", reason, n)
    assert rc.top("dlq") == {"A": 5, "B": 3, OTHER: 3}
    rc.add("dlq", "D", 10)
    assert rc.top("dlq") == {"D": 11, "A": 5, OTHER: 5}


def test_reason_ties_rank_by_name_so_the_label_set_is_stable():
    rc = ReasonCounts(top_k=1)
    rc.add("d", "zeta")
    rc.add("d", "alpha")
    assert rc.top("d") == {"alpha": 1, OTHER: 1}


def test_reason_state_is_bounded_even_with_endless_distinct_reasons():
    rc = ReasonCounts(top_k=3, mode="message")  # messages are where endless distinct reasons come from
    for i in range(5000):
        rc.add("d", f"order {i} failed")
    top = rc.top("d")
    assert len(top) == 4 and sum(top.values()) == 5000
    assert len(rc._counts["d"]) <= 1001
    default = ReasonCounts(top_k=3)
    for i in range(5000):
        default.add("d", f"order {i} failed")
    assert default.top("d") == {"message_hidden": 5000}


def test_reason_labels_keep_class_names_and_hide_messages_by_default():
    from mqwatch.agent.dlq import HIDDEN, reason_label

    cases = {
        "java.lang.IllegalStateException": "java.lang.IllegalStateException",
        "Net::ReadTimeout": "Net::ReadTimeout",
        "ZeroDivisionError: division by zero": "ZeroDivisionError",
        "Timeout::Error: execution expired": "Timeout::Error",
        "card_declined": "card_declined",
        "connect ECONNREFUSED": HIDDEN,
        "invalid email bob@example.com": HIDDEN,
        "bob@example.com": HIDDEN,
        None: "unknown",
    }
    for raw, label in cases.items():
        assert reason_label(raw) == label, raw
        assert reason_label(raw, "message") == (label if raw in (None,) else raw.strip())
