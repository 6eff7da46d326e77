"""How each consumer moves: what it consumed, what it will consume again, and when it is caught up.

Shared by every system. A check feeds one observation per consumer and queue per cycle:
the consumer's positions, one per upstream series (a Kafka partition's committed offset,
a Redis stream group's `entries-read`, a Pulsar partition's acknowledged position), and
its lag. From those:

- consumed: the sum of each position's advances (`mqwatch_consumer_consumed_total`). A
  position that moves back adds nothing; its drop is counted as reprocessed instead
  (`mqwatch_consumer_reprocessed_messages_total`): those messages will be consumed again.
  A position first seen counts whole, as agent/counters.py does for every upstream
  counter, so without rewinds the total equals the sum of the positions.
- drain: seconds until the lag reaches zero at the net drain rate
  (`mqwatch_consumer_drain_seconds`). The net rate is consume rate minus produce rate on
  the consumer's own partitions, which is how fast its lag falls; it is taken from the lag
  as an exponentially weighted moving average over the status window (each observation's
  rate weighs 2/(window+1), the usual N-period EMA), so a consumer that commits in bursts
  gets a steady estimate and one that stopped is seen within about a window. 0 when the
  lag is 0; +Inf when there is lag and the consumer is not gaining (net rate <= 0). A
  rewind raises the lag, so it counts as lost ground, which is what it is.

Per key only the last positions (packed 8-byte integers in the caller's stable order, not a
dict per partition: at 100k committed offsets that is 0.8 MB instead of several times it)
and three floats for the drain are kept.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from mqwatch.agent.counters import Counters

INF = float("inf")


@dataclass(frozen=True, slots=True)
class Flow:
    consumed: float  # total so far
    reprocessed: float  # total so far
    drain_seconds: float | None  # None until two observations gave a rate


class FlowTracker:
    def __init__(self, window: int):
        self.alpha = 2.0 / (max(1, window) + 1)
        self._positions: dict = {}  # key -> (upstream ids tuple, positions tuple)
        self._drain: dict = {}  # key -> (time, lag, net rate or None)
        self.consumed = Counters()
        self.reprocessed = Counters()

    def observe(self, key: Hashable, now: float, upstreams: tuple, positions: tuple, lag: float) -> Flow:
        """upstreams: ids of the position series (partitions) in a stable order; positions: theirs
        (both empty where the system has no positions: only the drain is estimated then)."""
        advanced, rewound = self._advance(key, upstreams, positions)
        consumed = self.consumed.add(key, advanced)
        reprocessed = self.reprocessed.add(key, rewound)
        return Flow(consumed, reprocessed, self._estimate(key, now, float(lag)))

    def _advance(self, key, upstreams: tuple, positions: tuple) -> tuple[float, float]:
        last = self._positions.get(key)
        if last is None:
            self._positions[key] = (upstreams, array("q", positions))
            return float(sum(positions)), 0.0
        last_ids, last_pos = last
        if last_ids == upstreams:
            pairs = zip(last_pos, positions)
        else:  # partitions added or gone: match by id; a new one counts whole
            before = dict(zip(last_ids, last_pos))
            pairs = ((before.get(u, 0), p) for u, p in zip(upstreams, positions))
        advanced = rewound = 0
        for old, new in pairs:
            if new >= old:
                advanced += new - old
            else:
                rewound += old - new
        if advanced or rewound or last_ids != upstreams:  # unchanged: keep the old array, not a new one
            self._positions[key] = (upstreams if last_ids != upstreams else last_ids, array("q", positions))
        return float(advanced), float(rewound)

    def _estimate(self, key, now: float, lag: float) -> float | None:
        last = self._drain.get(key)
        rate = None
        if last is not None:
            t0, lag0, rate = last
            dt = now - t0
            if dt > 0:
                instant = (lag0 - lag) / dt
                rate = instant if rate is None else rate + self.alpha * (instant - rate)
        self._drain[key] = (now, lag, rate)
        return drain_seconds(lag, rate)

    def retain(self, keys: Iterable[Hashable]) -> None:
        keep = set(keys)
        for d in (self._positions, self._drain):
            for k in [k for k in d if k not in keep]:
                del d[k]
        self.consumed.retain(keep)
        self.reprocessed.retain(keep)


def drain_seconds(lag: float, net_rate: float | None) -> float | None:
    """Seconds until `lag` is gone at `net_rate` messages/s; 0 when caught up, +Inf when not gaining."""
    if lag <= 0:
        return 0.0
    if net_rate is None:
        return None
    if net_rate <= 0:
        return INF
    return lag / net_rate
