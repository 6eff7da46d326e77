"""Dead-letter and retry topics against tansu: naming conventions, arrivals, reasons."""

from __future__ import annotations

from tests.helpers import kafka_create_topics, kafka_produce, unique

SPRING = [
    ("kafka_dlt-original-topic", b"orders"),
    ("kafka_dlt-exception-fqcn", b"org.springframework.kafka.listener.ListenerExecutionFailedException"),
    ("kafka_dlt-exception-cause-fqcn", b"com.shop.InvalidOrderException"),
    ("kafka_dlt-exception-message", b"order 4711 has no lines"),
]
SPRING_WITHOUT_CAUSE = [("kafka_dlt-exception-fqcn", b"java.lang.IllegalStateException")]
CONNECT = [
    ("__connect.errors.topic", b"payments"),
    ("__connect.errors.exception.class.name", b"org.apache.kafka.connect.errors.DataException"),
    ("__connect.errors.exception.message", b"Converting byte[] to Kafka Connect data failed"),
]


def _series(snap, name, **match):
    return {
        tuple(v for k, v in sorted(lbl.items()) if k not in ("system", "cluster", *match)): value
        for lbl, value in snap.samples(name) if all(lbl.get(k) == v for k, v in match.items())
    }


def test_every_naming_convention_is_found_with_its_source(kafka_check, kafka_bootstrap):
    p = unique("dl-names")
    names = {
        f"{p}-orders.DLT": f"{p}-orders",
        f"{p}-orders-dlt": f"{p}-orders",
        f"{p}-pay.DLQ": f"{p}-pay",
        f"{p}-pay-dlq": f"{p}-pay",
        f"{p}-users_dlq": f"{p}-users",
        f"{p}-users.deadletter": f"{p}-users",
    }
    prefixed_dlq = f"dlq-{p}-invoices"  # dlq-<topic>: the check's scope must include it
    connect_dlq = f"{p}-connect-sink-errors"  # Kafka Connect: any name, mapped in config
    retries = {f"{p}-orders-retry": f"{p}-orders", f"{p}-orders-retry-2": f"{p}-orders"}
    plain = f"{p}-orders"
    kafka_create_topics(kafka_bootstrap, {t: 1 for t in [*names, prefixed_dlq, connect_dlq, *retries, plain]})
    for i, t in enumerate([*names, prefixed_dlq, connect_dlq, *retries]):
        kafka_produce(kafka_bootstrap, t, {0: 1 + i % 3})
    run = kafka_check(p, topics={"include": [f"^{p}", f"^dlq-{p}"]},
                      dlq={"topics": {connect_dlq: f"{p}-shop-db"}})
    snap = run.collect()
    dlqs = _series(snap, "mqwatch_dlq_messages")
    expected = {**{(d, s): None for d, s in names.items()}, (prefixed_dlq, f"{p}-invoices"): None,
                (connect_dlq, f"{p}-shop-db"): None}
    assert set(dlqs) == set(expected)
    for i, t in enumerate([*names, prefixed_dlq, connect_dlq]):
        source = dict(k for k in expected)[t]
        assert snap.value("mqwatch_dlq_messages", dlq=t, source=source) == 1 + i % 3
    assert set(_series(snap, "mqwatch_retry_messages")) == set(retries.items())
    assert all(lbl["dlq"] != plain for lbl, _ in snap.samples("mqwatch_dlq_messages"))


def test_arrivals_count_across_cycles_and_reasons_count_only_new_dead_letters(kafka_check, kafka_bootstrap):
    p = unique("dl-arrivals")
    dlq, source = f"{p}-orders.DLT", f"{p}-orders"
    kafka_create_topics(kafka_bootstrap, {dlq: 2})
    kafka_produce(kafka_bootstrap, dlq, {0: 2, 1: 1}, headers=SPRING)
    run = kafka_check(p)
    snap = run.collect()
    assert snap.value("mqwatch_dlq_messages_total", dlq=dlq, source=source) == 3
    assert _series(snap, "mqwatch_dlq_reason_messages", dlq=dlq) == {("com.shop.InvalidOrderException",): 3}
    first_ts = snap.value("mqwatch_dlq_last_message_timestamp_seconds", dlq=dlq, source=source)
    assert first_ts is not None

    snap = run.collect()  # nothing new: nothing counted twice
    assert snap.value("mqwatch_dlq_messages_total", dlq=dlq, source=source) == 3
    assert _series(snap, "mqwatch_dlq_reason_messages", dlq=dlq) == {("com.shop.InvalidOrderException",): 3}

    kafka_produce(kafka_bootstrap, dlq, {1: 2}, headers=SPRING_WITHOUT_CAUSE)
    snap = run.collect()
    assert snap.value("mqwatch_dlq_messages_total", dlq=dlq, source=source) == 5
    assert snap.value("mqwatch_dlq_messages", dlq=dlq, source=source) == 5
    assert _series(snap, "mqwatch_dlq_reason_messages", dlq=dlq) == {
        ("com.shop.InvalidOrderException",): 3, ("java.lang.IllegalStateException",): 2}
    assert snap.value("mqwatch_dlq_last_message_timestamp_seconds", dlq=dlq, source=source) >= first_ts


def test_kafka_connect_headers_configured_headers_and_json_payload_reasons(kafka_check, kafka_bootstrap):
    p = unique("dl-connect")
    connect, custom, unnamed = f"{p}-sink.dlq", f"{p}-billing.DLQ", f"{p}-s3-sink-errors"
    kafka_create_topics(kafka_bootstrap, {connect: 1, custom: 1, unnamed: 1})
    kafka_produce(kafka_bootstrap, connect, {0: 2}, headers=CONNECT)
    kafka_produce(kafka_bootstrap, unnamed, {0: 1}, headers=CONNECT)
    kafka_produce(kafka_bootstrap, custom, {0: 1}, headers=[("x-error-kind", b"PaymentDeclined")])
    kafka_produce(kafka_bootstrap, custom, {0: 2}, value=b'{"error": {"code": "CardExpired"}, "id": 7}')
    kafka_produce(kafka_bootstrap, custom, {0: 1}, value=b'{"id": 8}')
    run = kafka_check(p, reasons={"headers": ["x-error-kind"], "json_field": "error.code"},
                      dlq={"topics": {unnamed: ""}})  # "": the source comes from the dead letters' headers
    snap = run.collect()
    assert snap.value("mqwatch_dlq_messages", dlq=unnamed, source="payments") == 1
    assert _series(snap, "mqwatch_dlq_reason_messages", dlq=connect) == {
        ("org.apache.kafka.connect.errors.DataException",): 2}
    assert _series(snap, "mqwatch_dlq_reason_messages", dlq=custom) == {
        ("PaymentDeclined",): 1, ("CardExpired",): 2, ("unknown",): 1}
    assert snap.errors == ()


def test_malformed_headers_and_payloads_never_break_collection(kafka_check, kafka_bootstrap):
    p = unique("dl-bad")
    dlq, other = f"{p}-orders.DLT", f"{p}-fine.DLT"
    kafka_create_topics(kafka_bootstrap, {dlq: 1, other: 1})
    huge = b"x" * 900_000
    kafka_produce(kafka_bootstrap, dlq, {0: 1}, headers=[("kafka_dlt-exception-fqcn", b"\xff\xfe\x00\x81binary")])
    kafka_produce(kafka_bootstrap, dlq, {0: 1}, headers=[("kafka_dlt-exception-cause-fqcn", b"\x00\x01\x02"),
                                                        ("kafka_dlt-exception-fqcn", b"com.shop.Fallback")])
    kafka_produce(kafka_bootstrap, dlq, {0: 1}, headers=[("kafka_dlt-exception-message", huge)])
    kafka_produce(kafka_bootstrap, dlq, {0: 1}, headers=[("kafka_dlt-exception-fqcn", None)], value=b"\xff{not json")
    kafka_produce(kafka_bootstrap, other, {0: 1}, headers=SPRING_WITHOUT_CAUSE)
    run = kafka_check(p, reasons={"json_field": "error", "mode": "message"})  # the long message is the point
    snap = run.collect()
    reasons = _series(snap, "mqwatch_dlq_reason_messages", dlq=dlq)
    long_reason = [r for (r,) in reasons if r.startswith("xxx")]
    assert len(long_reason) == 1 and len(long_reason[0]) <= 120
    assert reasons == {("unknown",): 2, ("com.shop.Fallback",): 1, (long_reason[0],): 1}
    assert _series(snap, "mqwatch_dlq_reason_messages", dlq=other) == {("java.lang.IllegalStateException",): 1}
    problems = [m for r, m in snap.errors if r == "dlq_reason"]
    assert len(problems) == 1 and dlq in problems[0] and "offset 0" in problems[0] and "not UTF-8" in problems[0]
    assert "and 2 more" in problems[0]  # the binary cause header and the non-JSON payload
    assert snap.value("mqwatch_dlq_messages_total", dlq=dlq, source=f"{p}-orders") == 4


def test_reasons_are_bounded_to_the_top_k_plus_other(kafka_check, kafka_bootstrap):
    p = unique("dl-topk")
    dlq = f"{p}-orders.DLT"
    kafka_create_topics(kafka_bootstrap, {dlq: 1})
    for i in range(6):
        kafka_produce(kafka_bootstrap, dlq, {0: 6 - i}, headers=[("kafka_dlt-exception-fqcn", f"com.shop.E{i}".encode())])
    snap = kafka_check(p, reasons={"top": 3}).collect()
    assert _series(snap, "mqwatch_dlq_reason_messages", dlq=dlq) == {
        ("com.shop.E0",): 6, ("com.shop.E1",): 5, ("com.shop.E2",): 4, ("other",): 6}


def test_sampling_is_bounded_per_cycle_and_newest_first(kafka_check, kafka_bootstrap):
    p = unique("dl-bound")
    dlq = f"{p}-orders.DLT"
    kafka_create_topics(kafka_bootstrap, {dlq: 1})
    kafka_produce(kafka_bootstrap, dlq, {0: 8}, headers=[("kafka_dlt-exception-fqcn", b"com.shop.Old")])
    kafka_produce(kafka_bootstrap, dlq, {0: 3}, headers=[("kafka_dlt-exception-fqcn", b"com.shop.New")])
    run = kafka_check(p, reasons={"sample": 4})
    snap = run.collect()
    assert _series(snap, "mqwatch_dlq_reason_messages", dlq=dlq) == {("com.shop.New",): 3, ("com.shop.Old",): 1}
    assert snap.value("mqwatch_dlq_messages_total", dlq=dlq, source=f"{p}-orders") == 11  # arrivals: all of them


def test_a_deleted_dlq_vanishes_with_its_series(kafka_check, kafka_bootstrap):
    from confluent_kafka.admin import AdminClient

    p = unique("dl-gone")
    dlq = f"{p}-orders.DLT"
    kafka_create_topics(kafka_bootstrap, {dlq: 1})
    kafka_produce(kafka_bootstrap, dlq, {0: 1}, headers=SPRING)
    run = kafka_check(p)
    assert run.collect().value("mqwatch_dlq_messages_total", dlq=dlq, source=f"{p}-orders") == 1
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for f in admin.delete_topics([dlq], operation_timeout=10).values():
        f.result(timeout=10)
    snap = run.collect()
    for name in ("mqwatch_dlq_messages", "mqwatch_dlq_messages_total", "mqwatch_dlq_reason_messages",
                 "mqwatch_dlq_last_message_timestamp_seconds"):
        assert [lbl for lbl, _ in snap.samples(name) if lbl["dlq"] == dlq] == [], name


def test_reasons_keep_class_names_and_show_messages_only_when_asked(kafka_check, kafka_bootstrap):
    """Exception messages are copied from payloads and may carry personal data."""
    p = unique("dl-privacy")
    dlq = f"{p}-orders.DLT"
    kafka_create_topics(kafka_bootstrap, {dlq: 1})
    personal = b"order 4711 for alice@example.com has no lines"
    kafka_produce(kafka_bootstrap, dlq, {0: 2}, headers=[("kafka_dlt-exception-message", personal)])
    kafka_produce(kafka_bootstrap, dlq, {0: 1}, headers=[
        ("kafka_dlt-exception-message", b"java.lang.IllegalArgumentException: card 4111111111111111 refused")])
    kafka_produce(kafka_bootstrap, dlq, {0: 1}, headers=SPRING)
    default = kafka_check(p).collect()
    assert _series(default, "mqwatch_dlq_reason_messages", dlq=dlq) == {
        ("message_hidden",): 2, ("java.lang.IllegalArgumentException",): 1, ("com.shop.InvalidOrderException",): 1}
    shown = kafka_check(p, reasons="message").collect()  # the short form of reasons: {mode: message}
    assert _series(shown, "mqwatch_dlq_reason_messages", dlq=dlq) == {
        (personal.decode(),): 2, ("java.lang.IllegalArgumentException: card 4111111111111111 refused",): 1,
        ("com.shop.InvalidOrderException",): 1}
