"""Holds the latest snapshot of every check and renders the exposition once per change.

A scrape only sends pre-rendered bytes (plain or gzip): collection and rendering never
happen inside a scrape, so a slow broker can't slow /metrics down. Each snapshot's
samples are rendered to text once, when it is published (agent/exposition.py); a render
then only lines the checks' texts up under their family headers, so one check's publish
doesn't re-render the others' series.

Under `mqwatch run` scrapes are served by a child process (agent/front.py), given each new
body after a render; the body is made of the checks' rendered pieces themselves, not a copy.
Where the server shares this process (agent.front.supported), every step of a publish is kept
short in what it holds the interpreter lock for (the text stays in pieces of ~256 KB, the old
snapshot is freed a piece at a time), so a scrape waiting for the lock is served within about
a switch interval (benchmark 4).
"""

from __future__ import annotations

import platform
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from mqwatch.agent import __version__
from mqwatch.agent.history import SeriesHistory
from mqwatch.agent.memtrim import release_free_memory
from mqwatch.agent.registry import get_check_class
from mqwatch.agent.exposition import (
    family_type, format_value, gather_pieces, gzip_pieces, header, label_string, render_snapshot,
)
from mqwatch.agent.metrics import (
    BUILD_INFO, COLLECT_DURATION, CONTRACT_METRICS, CORE_ERROR_REASONS, GAUGE, MetricDef, COLLECT_ERRORS, COUNTER,
    HISTOGRAM, LAST_SUCCESS, SELF_METRICS, SERIES, SHARD_INFO, UP,
)
from mqwatch.agent.process import process_exposition
from mqwatch.agent.sharding import WHOLE, Shard
from mqwatch.agent.snapshot import Snapshot, series_pieces

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
    # The runner allowed to publish for this check: a reload that replaces the check gives it
    # a new owner, and one that removes it drops the state, so a collection that outlives
    # its runner can never bring the old check's series back.
    owner: object = None
    errors_total: dict = field(default_factory=lambda: defaultdict(float))
    history: SeriesHistory = field(default_factory=lambda: SeriesHistory(HISTORY_POINTS))  # (metric, labels) -> points
    rendered: dict = field(default_factory=dict)  # metric name -> sample lines of `snapshot`, in pieces

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def up(self) -> bool:
        return bool(self.snapshot and self.snapshot.ok)


class Exporter:
    def __init__(self, metric_defs=None, process_metrics: bool = True, shard: Shard = WHOLE):
        self._lock = threading.Lock()
        self._shard = shard
        self._states: dict[str, CheckState] = {}
        if metric_defs is None:
            # Not catalog(): that imports every check and its client library. Checks'
            # own metrics are learnt from the snapshots they publish.
            metric_defs = {m.name: m for m in CONTRACT_METRICS + SELF_METRICS + (BUILD_INFO, SHARD_INFO)}
        self._defs = metric_defs
        self._process_metrics = process_metrics
        self._pieces: tuple[bytes, ...] = ()  # the plain body, in pieces of ~256 KB
        self._gzip = b""
        self._listeners: list = []  # called after every render (agent.front gives the body to the serving child)
        self.render()

    # ---- state ------------------------------------------------------------------------
    def ensure(self, kind: str, name: str, interval: float = 0.0, owner: object = None) -> CheckState:
        """The check's state (created if new); `owner` (a runner's token) becomes the only publisher."""
        reasons = known_error_reasons(kind)  # outside the lock: it may read package metadata
        with self._lock:
            st = self._states.get(f"{kind}/{name}")
            if st is None:
                st = self._states[f"{kind}/{name}"] = _new_state(kind, name, reasons, interval)
            st.interval = interval
            if owner is not None:
                st.owner = owner
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

    def publish(self, snap: Snapshot, kind: str | None = None, owner: object = None) -> bool:
        """Make `snap` the check's current data. With `owner`, only while that runner still owns
        the check (not removed or replaced since); False when the snapshot was dropped."""
        kind = kind or snap.system
        for name, d in snap.metric_defs.items():
            self._defs.setdefault(name, d)
        rendered = render_snapshot(snap, self._def) if snap.ok else {}  # outside the lock: scrapes never wait
        reasons = known_error_reasons(kind)
        with self._lock:
            st = self._states.get(f"{kind}/{snap.cluster}")
            if owner is not None and (st is None or st.owner is not owner):
                return False
            if st is None:
                st = self._states[f"{kind}/{snap.cluster}"] = _new_state(kind, snap.cluster, reasons)
            old = st.snapshot
            st.snapshot, st.rendered = snap, rendered
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
        # Freeing the previous 100k-series snapshot at once is one C call of ~10 ms (300k
        # objects); freed a piece at a time, the lock can change hands between pieces.
        pieces = series_pieces(old)
        del old
        while pieces:
            pieces.pop()
        # Once per cycle, after the cycle's transient objects are gone: the agent's RSS then
        # tracks what it holds rather than the peak of its largest cycle (benchmark 5).
        release_free_memory()
        return True

    # ---- rendering --------------------------------------------------------------------
    def render(self) -> None:
        with self._lock:
            parts = self._parts()
        pieces = gather_pieces(parts)
        del parts
        if self._process_metrics:
            pieces.append(process_exposition().encode())
        gz = gzip_pieces(pieces)
        with self._lock:
            self._pieces, self._gzip = tuple(pieces), gz
        for listener in self._listeners:
            listener()

    def on_render(self, listener) -> None:
        self._listeners.append(listener)

    def _def(self, name: str) -> MetricDef:
        return self._defs.get(name) or MetricDef(name, GAUGE, "Undocumented metric.")  # never fail a render

    def body(self, want_gzip: bool = False) -> bytes:
        """The whole body at once (CLI, tests); the server sends body_pieces()."""
        return self._gzip if want_gzip else b"".join(self._pieces)

    def body_pieces(self, want_gzip: bool = False) -> tuple[bytes, ...]:
        """The body as the pieces it was rendered in: a scrape sends them as they are, since
        joining 13 MB would hold the interpreter lock for milliseconds."""
        return (self._gzip,) if want_gzip else self._pieces

    def _parts(self) -> list[str | bytes]:
        """The exposition of every check, in pieces; joined, byte for byte what generate_latest(self) gives."""
        parts = [header(BUILD_INFO.name, "gauge", BUILD_INFO.help),
                 f"{BUILD_INFO.name}{label_string(_build_info_labels())} 1.0\n"]
        if self._shard.sharded:
            parts += [header(SHARD_INFO.name, "gauge", SHARD_INFO.help),
                      f"{SHARD_INFO.name}{label_string(_shard_labels(self._shard))} 1.0\n"]
        states = sorted(self._states.values(), key=lambda s: s.key)
        for m in SELF_METRICS:
            lines = [
                f"{m.name}{label_string(sorted({'system': st.kind, 'cluster': st.name, **extra}.items()))} "
                f"{format_value(float(value))}\n"
                for st in states for extra, value in _self_samples(m, st)
            ]
            if lines:
                parts.append(header(m.name, family_type(m.type), m.help))
                parts.extend(lines)
        merged: dict[str, list[bytes]] = defaultdict(list)
        for st in states:
            if st.snapshot is None or not st.snapshot.ok:
                continue  # stale data is worse than none: up=0 says why it's missing
            for name, pieces in st.rendered.items():
                merged[name].extend(pieces)
        for name in sorted(merged):
            d = self._def(name)
            parts.append(header(name, family_type(d.type), d.help))
            parts.extend(merged[name])
        return parts

    def collect(self) -> list:
        """The same exposition as prometheus-client metric families, so `generate_latest(exporter)`
        works (a slower path, kept as the reference the fast renderer is tested against)."""
        with self._lock:
            return self._families()

    def _families(self) -> list:
        from prometheus_client.core import GaugeMetricFamily  # the reference path only (agent/process.py: why)

        out: list = []
        info = GaugeMetricFamily(BUILD_INFO.name, BUILD_INFO.help, labels=list(BUILD_INFO.labels))
        info.add_metric(list(_build_info_values()), 1)
        out.append(info)
        if self._shard.sharded:
            shard = GaugeMetricFamily(SHARD_INFO.name, SHARD_INFO.help, labels=list(SHARD_INFO.labels))
            shard.add_metric([str(self._shard.index), str(self._shard.count)], 1)
            out.append(shard)
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
                continue
            for name, series in st.snapshot.families.items():
                merged[name].extend(series)
        for name in sorted(merged):
            d = self._def(name)
            fam = _family(name, d.type, d.help)
            for labels, value in merged[name]:
                lbl = dict(labels)
                if d.type == HISTOGRAM:
                    _add_histogram(fam, name, lbl, value)
                else:
                    fam.add_sample(name, lbl, value)
            out.append(fam)
        return out


def _build_info_values() -> tuple[str, str]:
    return (__version__, platform.python_version())


_reasons: dict[str, tuple[str, ...]] = {}


def known_error_reasons(kind: str) -> tuple[str, ...]:
    """The reasons a check of this kind may report: the core's and those its class declares
    (looked up once per kind)."""
    if kind not in _reasons:
        try:
            declared = tuple(get_check_class(kind).error_reasons)
        except (LookupError, AttributeError):
            declared = ()
        _reasons[kind] = tuple(dict.fromkeys(CORE_ERROR_REASONS + declared))
    return _reasons[kind]


def _new_state(kind: str, name: str, reasons: tuple[str, ...], interval: float = 0.0) -> CheckState:
    """A check's state, its error counter at 0 for every reason it is known to report (a
    counter with known label values starts at 0, so increase() sees the first error)."""
    st = CheckState(kind, name, interval)
    for reason in reasons:
        st.errors_total[reason] = 0.0
    return st


def _build_info_labels():
    return sorted(zip(BUILD_INFO.labels, _build_info_values()))


def _shard_labels(shard: Shard):
    return sorted((("index", str(shard.index)), ("count", str(shard.count))))


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


def _family(name: str, typ: str, help: str):
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    if typ == COUNTER:
        return CounterMetricFamily(name, help)
    if typ == HISTOGRAM:
        return HistogramMetricFamily(name, help)
    return GaugeMetricFamily(name, help)


def _add_histogram(fam, name: str, labels: dict, h) -> None:
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
    st.history.record(snap.started + snap.duration, (
        ((name, labels), value) for name in _HISTORY_METRICS for labels, value in snap.families.get(name, ())
    ))
