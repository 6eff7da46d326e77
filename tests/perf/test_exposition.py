"""The fast exposition renderer must give exactly the bytes prometheus-client's generate_latest gives.

Prometheus parses what we serve; any drift in escaping, float formatting or ordering would
be a silent contract break, so the reference here is the library itself, on arbitrary input.
"""

from __future__ import annotations

import gzip
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mqwatch.agent.exporter import Exporter
from mqwatch.agent.metrics import COUNTER, GAUGE, HISTOGRAM, MetricDef, SELF_METRICS, BUILD_INFO
from mqwatch.agent.snapshot import Histogram, SnapshotBuilder

GAUGE_DEF = MetricDef("t_lag_messages", GAUGE, 'Lag with "quotes", a back\\slash\nand a newline.', ("queue", "consumer"))
COUNTER_DEF = MetricDef("t_events_total", COUNTER, "Events.", ("queue",))
HIST_DEF = MetricDef("t_latency_seconds", HISTOGRAM, "Latency.", ("queue",))
DEFS = (GAUGE_DEF, COUNTER_DEF, HIST_DEF)
ALL_DEFS = {m.name: m for m in DEFS + SELF_METRICS + (BUILD_INFO,)}

label_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
values = st.one_of(
    st.floats(allow_nan=False),  # includes +-Inf, huge and tiny magnitudes
    st.integers(min_value=-(2**62), max_value=2**62).map(float),
    st.sampled_from([0.0, -0.0, 1.0, 999999.9, 1e6, 1234567.0, 1e-7, 12345678901234567890.0]),
)


@st.composite
def histograms(draw):
    bounds = sorted(set(draw(st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), max_size=4))))
    counts = sorted(draw(st.lists(st.integers(0, 10**9), min_size=len(bounds) + 1, max_size=len(bounds) + 1)))
    buckets = tuple(zip(bounds + [math.inf], map(float, counts)))
    return Histogram(buckets, draw(st.floats(min_value=0, max_value=1e12)))


@st.composite
def snapshots(draw, cluster):
    b = SnapshotBuilder("kafka", cluster, DEFS)
    for _ in range(draw(st.integers(0, 6))):
        b.add(GAUGE_DEF.name, draw(values), queue=draw(label_text), consumer=draw(label_text))
    for _ in range(draw(st.integers(0, 3))):
        b.add(COUNTER_DEF.name, draw(values), queue=draw(label_text))
    for _ in range(draw(st.integers(0, 2))):
        b.add(HIST_DEF.name, draw(histograms()), queue=draw(label_text))
    for _ in range(draw(st.integers(0, 2))):
        b.error(draw(st.sampled_from(["timeout", "broker_error", 'odd"reason\\'])), "message")
    ok = draw(st.booleans())
    return b.build(1_700_000_000.0, draw(st.floats(min_value=0, max_value=100)), ok=ok, error="" if ok else "down")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c-1"]), st.integers(0, 1)), max_size=6), st.data())
def test_rendered_bytes_equal_generate_latest(publishes, data):
    exporter = Exporter(metric_defs=ALL_DEFS, process_metrics=False)
    for cluster, _ in publishes:
        exporter.publish(data.draw(snapshots(cluster)))
    assert exporter.body() == generate_latest(exporter)


def test_served_text_parses_and_keeps_every_series():
    exporter = Exporter(metric_defs=ALL_DEFS, process_metrics=False)
    b = SnapshotBuilder("kafka", "shop", DEFS)
    for i in range(500):
        b.add(GAUGE_DEF.name, i, queue=f"orders-{i % 7}", consumer=f'billing "{i}"')
    b.add(HIST_DEF.name, Histogram(((0.5, 1.0), (math.inf, 3.0)), 2.5), queue="orders")
    exporter.publish(b.build(0.0, 0.1))
    families = {f.name: f for f in text_string_to_metric_families(exporter.body().decode())}
    lag = families["t_lag_messages"].samples
    assert len(lag) == 500
    assert {s.labels["consumer"] for s in lag} == {f'billing "{i}"' for i in range(500)}
    assert sum(s.value for s in lag) == sum(range(500))
    assert families["t_latency_seconds"].samples[-1].value == 2.5  # _sum


def test_one_checks_publish_keeps_the_other_checks_series():
    exporter = Exporter(metric_defs=ALL_DEFS, process_metrics=False)
    for cluster, value in (("a", 1), ("b", 2), ("a", 3)):
        b = SnapshotBuilder("kafka", cluster, DEFS)
        b.add(GAUGE_DEF.name, value, queue="q", consumer="c")
        exporter.publish(b.build(0.0, 0.1))
    text = exporter.body().decode()
    assert 't_lag_messages{cluster="a",consumer="c",queue="q",system="kafka"} 3.0' in text
    assert 't_lag_messages{cluster="b",consumer="c",queue="q",system="kafka"} 2.0' in text
    assert text.count("# TYPE t_lag_messages gauge") == 1


def test_a_metric_missing_from_the_catalog_is_still_rendered_like_generate_latest():
    from mqwatch.agent.snapshot import Snapshot

    exporter = Exporter(metric_defs=ALL_DEFS, process_metrics=False)
    labels = (("cluster", "shop"), ("system", "kafka"))
    exporter.publish(Snapshot("kafka", "shop", 0.0, 0.1, True, {"t_plugin_extra": ((labels, 4.0),)}))
    body = exporter.body()
    assert body == generate_latest(exporter)
    assert b'# HELP t_plugin_extra Undocumented metric.\n' in body


def test_an_exposition_rendered_in_small_pieces_is_the_same_text_and_gzip(monkeypatch):
    """A large exposition is rendered, encoded and freed in pieces (the interpreter lock changes hands
    between them); piece boundaries must not change a byte. Tiny pieces put a boundary everywhere."""
    from mqwatch.agent import exposition, snapshot

    monkeypatch.setattr(exposition, "PIECE_BYTES", 100)
    monkeypatch.setattr(snapshot, "PIECE", 4)
    exporter = Exporter(metric_defs=ALL_DEFS, process_metrics=False)
    for cluster, shift in (("a", 0), ("b", 1), ("a", 2)):  # "a" again: its first snapshot is freed in pieces
        b = SnapshotBuilder("kafka", cluster, DEFS)
        for i in range(50):
            b.add(GAUGE_DEF.name, i + shift, queue=f"orders-{i % 7}", consumer=f'billing "é{i}"\n')
        for i in range(5):
            b.add(HIST_DEF.name, Histogram(((0.5, float(i)), (math.inf, 9.0)), 2.5 + shift), queue=f"q{i}")
        exporter.publish(b.build(0.0, 0.1))
    body, pieces = exporter.body(), exporter.body_pieces()
    assert body == generate_latest(exporter)
    assert len(pieces) > 10 and all(p.endswith(b"\n") for p in pieces)  # whole lines in every piece
    assert gzip.decompress(exporter.body(want_gzip=True)) == body
    lag = {f.name: f for f in text_string_to_metric_families(body.decode())}["t_lag_messages"].samples
    assert sorted(s.value for s in lag if s.labels["cluster"] == "a") == [float(i + 2) for i in range(50)]
