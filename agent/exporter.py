"""Holds the latest snapshot of every check and renders the exposition once per change.

A scrape only copies pre-rendered bytes (plain or gzip): collection and rendering never
happen inside a scrape, so a slow broker can't slow /metrics down.
"""

from __future__ import annotations

import gzip
import platform
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field

from prometheus_client import ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric,
)
from prometheus_client.exposition import generate_latest

from agent import __version__
from agent.metrics import (
    BUILD_INFO, COLLECT_DURATION, CONTRACT_METRICS, GAUGE, MetricDef, COLLECT_ERRORS, COUNTER, HISTOGRAM, LAST_SUCCESS, SELF_METRICS, SERIES, UP,
    catalog,
)
from agent.snapshot import Snapshot

HISTORY_POINTS = 60  # per-series history for the status page's sparklines


@dataclass
class CheckState:
    """What the agent knows about one check across collections (survives reloads)."""

    kind: str
    name: str
    interval: float = 0.0
    snapshot: Snapshot | None = None
    last_success: float | None = None
    last_duration: float | None = None
    last_error: str = ""
    completed: int = 0
    errors_total: dict = field(default_factory=lambda: defaultdict(float))
    history: dict = field(default_factory=dict)  # (metric, labels) -> deque[(ts, value)]

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def up(self) -> bool:
        return bool(self.snapshot and self.snapshot.ok)


class _Collection:
    """A one-shot collector over prepared families, for generate_latest."""

    def __init__(self, families):
        self._families = families

    def collect(self):
        return self._families


class Exporter:
    def __init__(self, metric_defs=None, process_metrics: bool = True):
        self._lock = threading.Lock()
        self._states: dict[str, CheckState] = {}
        if metric_defs is None:
            metric_defs = {m.name: m for m in CONTRACT_METRICS}
            metric_defs.update({e.metric.name: e.metric for e in catalog()})
        self._defs = metric_defs
        self._process = ProcessCollector(registry=None) if process_metrics else None
        self._body = b""
        self._gzip = b""
        self.render()

    # ---- state ------------------------------------------------------------------------
    def ensure(self, kind: str, name: str, interval: float = 0.0) -> CheckState:
        with self._lock:
            st = self._states.get(f"{kind}/{name}")
            if st is None:
                st = self._states[f"{kind}/{name}"] = CheckState(kind, name, interval)
            st.interval = interval
            return st

    def retain(self, keys: set[str]) -> None:
        """Forget checks that are no longer configured, so their series vanish."""
        with self._lock:
            for k in list(self._states):
                if k not in keys:
                    del self._states[k]
        self.render()

    def states(self) -> list[CheckState]:
        with self._lock:
            return list(self._states.values())

    def publish(self, snap: Snapshot, kind: str | None = None) -> None:
        kind = kind or snap.system
        with self._lock:
            st = self._states.get(f"{kind}/{snap.cluster}")
            if st is None:
                st = self._states[f"{kind}/{snap.cluster}"] = CheckState(kind, snap.cluster)
            st.snapshot = snap
            st.completed += 1
            st.last_duration = snap.duration
            for reason, _ in snap.errors:
                st.errors_total[reason] += 1
            if snap.ok:
                st.last_success = snap.started + snap.duration
                st.last_error = snap.errors[-1][1] if snap.errors else ""
                _record_history(st, snap)
            else:
                st.last_error = snap.error
        self.render()

    # ---- rendering --------------------------------------------------------------------
    def render(self) -> None:
        with self._lock:
            families = self._families()
        body = generate_latest(_Collection(families))
        if self._process is not None:
            body += generate_latest(_Collection(self._process.collect()))
        gz = gzip.compress(body, compresslevel=5)
        with self._lock:
            self._body, self._gzip = body, gz

    def body(self, want_gzip: bool = False) -> bytes:
        return self._gzip if want_gzip else self._body

    def _families(self) -> list[Metric]:
        out: list[Metric] = []
        info = GaugeMetricFamily(BUILD_INFO.name, BUILD_INFO.help, labels=list(BUILD_INFO.labels))
        info.add_metric([__version__, platform.python_version()], 1)
        out.append(info)
        states = sorted(self._states.values(), key=lambda s: s.key)
        for m in SELF_METRICS:
            fam = _family(m.name, m.type, m.help)
            for st in states:
                for extra, value in _self_samples(m, st):
                    fam.add_sample(m.name, {"system": st.kind, "cluster": st.name, **extra}, value)
            if fam.samples:
                out.append(fam)
        merged: dict[str, list] = defaultdict(list)
        for st in states:
            if st.snapshot is None or not st.snapshot.ok:
                continue  # stale data is worse than none: up=0 says why it's missing
            for name, series in st.snapshot.families.items():
                merged[name].extend(series)
        for name in sorted(merged):
            d = self._defs.get(name) or MetricDef(name, GAUGE, "Undocumented metric.")  # never fail a render
            fam = _family(name, d.type, d.help)
            for labels, value in merged[name]:
                lbl = dict(labels)
                if d.type == HISTOGRAM:
                    _add_histogram(fam, name, lbl, value)
                else:
                    fam.add_sample(name, lbl, value)
            out.append(fam)
        return out


def _self_samples(m, st: CheckState):
    """The agent's own series about one check: (extra labels, value) pairs."""
    if m is UP:
        return [({}, 1.0 if st.up else 0.0)] if st.snapshot is not None else []
    if m is COLLECT_DURATION:
        return [({}, st.last_duration)] if st.last_duration is not None else []
    if m is COLLECT_ERRORS:
        return [({"reason": r}, n) for r, n in sorted(st.errors_total.items())]
    if m is LAST_SUCCESS:
        return [({}, st.last_success)] if st.last_success is not None else []
    if m is SERIES:
        return [({}, st.snapshot.series)] if st.snapshot is not None else []
    raise AssertionError(m.name)


def _family(name: str, typ: str, help: str) -> Metric:
    if typ == COUNTER:
        return CounterMetricFamily(name, help)
    if typ == HISTOGRAM:
        return HistogramMetricFamily(name, help)
    return GaugeMetricFamily(name, help)


def _add_histogram(fam: Metric, name: str, labels: dict, h) -> None:
    for le, count in h.buckets:
        bound = "+Inf" if le == float("inf") else repr(float(le))
        fam.add_sample(name + "_bucket", {**labels, "le": bound}, count)
    fam.add_sample(name + "_count", labels, h.count)
    fam.add_sample(name + "_sum", labels, h.sum)


_HISTORY_METRICS = (
    "mqwatch_consumer_lag_seconds", "mqwatch_consumer_lag_messages", "mqwatch_dlq_messages",
    "mqwatch_delayed_overdue_seconds", "mqwatch_delayed_overdue_messages",
)


def _record_history(st: CheckState, snap: Snapshot) -> None:
    now = snap.started + snap.duration
    seen = set()
    for name in _HISTORY_METRICS:
        for labels, value in snap.families.get(name, ()):
            key = (name, labels)
            seen.add(key)
            dq = st.history.get(key)
            if dq is None:
                dq = st.history[key] = deque(maxlen=HISTORY_POINTS)
            dq.append((now, value))
    for key in list(st.history):
        if key not in seen:
            del st.history[key]

