"""Immutable results of one collection, and the builder a check fills them with.

The builder enforces the catalog: a check can only emit metrics it declared, with
exactly the declared labels, so the exported contract cannot drift silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import islice

from mqwatch.agent.metrics import HISTOGRAM, MetricDef
from mqwatch.agent.redact import redact


@dataclass(frozen=True)
class Histogram:
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ending with +Inf
    sum: float

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0


@dataclass(frozen=True)
class Snapshot:
    system: str
    cluster: str
    started: float
    duration: float
    ok: bool
    # metric name -> tuple of (labels as sorted tuple of pairs, value)
    families: dict = field(default_factory=dict)
    errors: tuple[tuple[str, str], ...] = ()  # (reason, message), partial or fatal
    error: str = ""  # the fatal error, when ok is False
    # The emitting check's declared metrics, so the exporter can render any check's
    # families without importing every check to build the catalog.
    metric_defs: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def series(self) -> int:
        return sum(len(v) for v in self.families.values())

    def value(self, name: str, **labels):
        """The value of one series, or None: for tests and the table/json output."""
        want = {"system": self.system, "cluster": self.cluster, **labels}
        for lbls, v in self.families.get(name, ()):
            d = dict(lbls)
            if all(d.get(k) == str(val) for k, val in want.items()):
                return v
        return None

    def samples(self, name: str):
        return [(dict(lbl), v) for lbl, v in self.families.get(name, ())]


# Series handled per step where a snapshot is built or freed: one step frees or creates ~6k
# objects, ~0.2 ms of the interpreter lock, so a scrape in another thread gets it in between.
PIECE = 2048


def slices(seq) -> list:
    """`seq` cut into consecutive slices of PIECE items, for work done a piece at a time."""
    return [seq[i:i + PIECE] for i in range(0, len(seq), PIECE)]


def series_pieces(snap: Snapshot | None) -> list[tuple]:
    """Slices of every family of `snap`, holding its series. Drop the snapshot, then the slices
    one at a time: the series are freed a piece at a time rather than in one C call (a 100k-series
    snapshot's teardown held the lock ~10 ms)."""
    if snap is None:
        return []
    return [piece for series in snap.families.values() for piece in slices(series)]


class UndeclaredMetric(Exception):
    pass


class SnapshotBuilder:
    """Collects one cycle's series. `previous` is the builder of the check's last collection:
    a series whose labels and value are unchanged reuses that cycle's (labels, value) objects.

    Why: a snapshot's series live until the next one, and the allocator's 1 MB arenas cannot be
    returned while any object in them is alive. Series made anew each cycle land among the
    cycle's temporary objects, so every arena the largest collection ever touched stayed pinned
    (the memory benchmark's churn of 500 groups left ~5 MB behind for good). Reused series stay
    where they were first made; only changed values are new objects.

    Label pairs likewise: one (name, value) tuple per distinct label, shared by every series that
    carries it and handed on from cycle to cycle (new pairs every cycle were most of a 10k-partition
    snapshot's 3 MB). The table holds only the pairs of the last cycle, so the labels of a deleted
    group go with it; a table kept for the process's life kept the pairs of every group ever seen,
    scattered over the arenas of the cycles that first saw them.
    """

    def __init__(self, system: str, cluster: str, metrics: tuple[MetricDef, ...] | list[MetricDef],
                 previous: SnapshotBuilder | None = None):
        self.system, self.cluster = system, cluster
        self._defs = {m.name: m for m in metrics}
        # metric name -> {labels: (labels, value)}: the snapshot's series themselves, by labels
        self._families: dict[str, dict] = {}
        self._previous = previous._families if previous is not None else {}
        self._pairs: dict = {}  # (name, value) -> the pair object of every label used this cycle
        self._previous_pairs = previous._pairs if previous is not None else {}
        self._system_cluster = [self._pair("system", system), self._pair("cluster", cluster)]
        self._checked: set[tuple] = set()  # (metric, label names) already validated: add() is hot
        self.errors: list[tuple[str, str]] = []

    def add(self, name: str, value, **labels) -> None:
        d = self._defs.get(name)
        if d is None:
            raise UndeclaredMetric(f"{self.system} check emitted {name}, which it does not declare in its metrics")
        shape = (name, *labels)
        if shape not in self._checked:
            given = set(labels)
            if not set(d.labels) <= given or not given <= set(d.labels) | set(d.optional_labels):
                raise UndeclaredMetric(f"{name} takes labels {d.labels + d.optional_labels}, got {tuple(sorted(labels))}")
            self._checked.add(shape)
        if d.type == HISTOGRAM:
            if not isinstance(value, Histogram):
                raise TypeError(f"{name} is a histogram; pass a Histogram")
        else:
            value = float(value)
            if value != value:
                return  # a NaN is never an answer a user can act on; absence is honest
        pairs, previous_pairs = self._pairs, self._previous_pairs
        full = self._system_cluster.copy()
        for k, v in labels.items():  # self._pair, inlined: this loop runs for every label of every series
            if v is not None and v != "":
                if type(v) is not str:
                    v = str(v)
            elif k in d.labels:
                v = ""
            else:
                continue
            given = (k, v)
            pair = pairs.get(given)
            if pair is None:
                pair = pairs[given] = previous_pairs.get(given, given)
            full.append(pair)
        full.sort()
        key = tuple(full)
        before = self._previous.get(name)
        old = before.get(key) if before else None
        if old is None:
            series = (key, value)
        elif old[1] == value and (value or _same_sign(old[1], value)):
            series = old
        else:
            series = (old[0], value)
        self._families.setdefault(name, {})[series[0]] = series  # last write wins: no duplicate series

    def _pair(self, name: str, value: str) -> tuple:
        key = (name, value)
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._pairs[key] = self._previous_pairs.get(key, key)
        return pair

    def error(self, reason: str, message: str) -> None:
        """A partial failure: counted in mqwatch_collect_errors_total{reason}, collection goes on."""
        self.errors.append((reason, message))

    def build(self, started: float, duration: float, ok: bool = True, error: str = "") -> Snapshot:
        self._previous = self._previous_pairs = {}  # the last cycle's series must not outlive its snapshot through us
        families = {name: _tuple_in_pieces(series.values()) for name, series in self._families.items()}
        # Error texts often embed a client library's exception, which may echo a URL or password:
        # masked here, once, so /status, the page, `check` output and the logs all get the clean text.
        errors = tuple((reason, redact(message)) for reason, message in self.errors)
        return Snapshot(self.system, self.cluster, started, duration, ok, families, errors, redact(error), self._defs)


def _same_sign(a, b) -> bool:
    """-0.0 == 0.0, but they render differently: a zero is reused only with its sign."""
    return not isinstance(a, float) or math.copysign(1.0, a) == math.copysign(1.0, b)


def _tuple_in_pieces(items) -> tuple:
    """tuple(items), its (labels, value) pairs created PIECE at a time: one tuple() of 100k
    items is a single C call that held the lock ~5 ms."""
    it, out = iter(items), []
    while chunk := list(islice(it, PIECE)):
        out += chunk
    return tuple(out)
