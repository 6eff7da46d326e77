"""Exported counters built from upstream counters that can reset, vanish or come back.

mqwatch often exports a counter that is a sum of what brokers count: a Pulsar topic's
`msgInCounter` per partition and per broker, Kafka high watermarks per partition, a Redis
stream's `entries-added`, a group's committed offsets. A plain sum goes down when one of
them resets (topic unload, broker restart, key recreated) or is missing for a cycle (one
broker's scrape failed), and the cycle after, the whole sum looks new. So each upstream
series is tracked on its own and only its non-negative increments are added, the way
Prometheus' `increase()` treats a counter:

- value >= last:  adds value - last.
- value <  last:  `RESET` (the default): the upstream restarted from zero, so its new value
  is the increment. `REBASE`: the upstream moved back (a committed offset rewound, a list
  that only tells its length shrank): nothing is added and later growth counts from there.
- not observed this cycle: adds nothing, and its last value is kept, so when it comes back
  only what it gained meanwhile is added (or, if it reset meanwhile, its new value).
- first observation of an upstream series (at start-up, or a new partition / broker /
  key later): its whole value counts. The upstream counted those events since it was
  created or loaded, and counting them keeps the invariant that, without resets, the
  exported total equals the sum of the upstream values. An exported series therefore
  starts at the sum of what its upstreams report when mqwatch first sees them, as an
  exporter of the raw broker counter would. Prometheus takes a new series' first sample
  as its baseline, so rules that must see the first events of a new series (a DLQ's
  first dead letters) have to look at new series on their own.

A reset that happens between two observations and climbs back above the last value is
invisible (the same limit as Prometheus' own scrapes). Totals only ever grow; they are
forgotten only when the caller says the exported series is gone (`retain`). NaN,
negative or non-numeric values are treated as not observed.

Usage (one instance per exported metric, kept by the check across collections):

    produced = Counters()
    for partition, broker, value in upstream:
        produced.observe(queue, value, upstream=(partition, broker))
    out.add("mqwatch_queue_produced_total", produced.total(queue), queue=queue)
    produced.retain(live_queues)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

RESET = "reset"
REBASE = "rebase"


class Counters:
    """Monotonic totals per exported key, fed by upstream counters or by direct increments."""

    __slots__ = ("_last", "_total")

    def __init__(self):
        self._last: dict[Hashable, dict[Hashable, float]] = {}  # key -> upstream -> last value
        self._total: dict[Hashable, float] = {}

    def observe(self, key: Hashable, value, upstream: Hashable = None, on_drop: str = RESET) -> float | None:
        """One upstream counter's current value; returns the key's total (None if never counted)."""
        if not _valid(value):
            return self._total.get(key)
        value = float(value)
        seen = self._last.setdefault(key, {})
        last = seen.get(upstream)
        if last is None:
            delta = value
        elif value >= last:
            delta = value - last
        else:
            delta = value if on_drop == RESET else 0.0
        seen[upstream] = value
        return self._bump(key, delta)

    def add(self, key: Hashable, n) -> float | None:
        """Events counted directly (entries newer than the last one seen); negative adds nothing."""
        if not _valid(n):
            return self._total.get(key)
        return self._bump(key, float(n))

    def total(self, key: Hashable) -> float | None:
        return self._total.get(key)

    def keys(self) -> list:
        return list(self._total)

    def retain(self, keys: Iterable[Hashable]) -> None:
        """Forget every exported key not in `keys` (its series is gone), with its upstreams."""
        keep = set(keys)
        for d in (self._last, self._total):
            for k in [k for k in d if k not in keep]:
                del d[k]

    def _bump(self, key, delta: float) -> float:
        total = self._total.get(key, 0.0) + delta
        self._total[key] = total
        return total


def _valid(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 and not math.isnan(value) and not math.isinf(value)
