"""Consumer status per partition over a sliding window of collections: ok, lagging, stalled,
stopped, rewound. Shared by every system (Kafka groups, Pulsar subscriptions, Redis stream
groups); a "partition" is whatever unit has its own position (a Redis stream group has one).

Each partition is judged over its last `size` observations (the window), in this order:

- rewound: its position went backwards between two observations of the window.
- ok: it was caught up at some point in the window. Caught up means lag at or below
  `allowed_lag`, or a lag the check knows holds nothing to consume (Kafka: transaction
  markers, whose lag in seconds is 0).
- stalled / stopped: lag above `allowed_lag` and its position did not move across the
  window. Stalled when someone consumes (the group is active, or another partition of the
  same consumer on the same queue moved in the window): alive but stuck, e.g. on a poison
  message. Stopped when nobody does.
- lagging: falling behind. Among the observations of the window at which its position moved
  (the commit points), the lag never fell from one to the next, and the last is above the
  first by more than the tolerance: what the consumer consumed per commit point, on average.
- ok otherwise: a constant or shrinking lag with a moving position is keeping up.

The consumer on the queue gets its worst partition's status, in the order
ok < rewound < lagging < stalled < stopped.

Until a partition has a full window it is ok, except that a partition with lag whose
position has not moved, of a consumer that is not active and moved nowhere, is stopped
from its first observation (nothing will change for it; waiting only delays the alert).

Why commit points and a tolerance (no aliasing): a monitor samples the committed offset,
and between two commits the lag grows by what is produced. Judging every sample would make
the verdict depend on how commits and collections line up (a consumer committing every
second collection shows a sawtooth; one committing slightly faster than collections shows
a lag that creeps up for several samples, then drops). Lag sampled where the position moved
measures the consumer; the phase of a sample can still add up to one commit's worth of
messages, hence the tolerance. Commits at half, once and twice the collection interval get
the same verdicts (tests/test_status.py, tests/kafka/test_status.py). A consumer must commit
at least once per (size - 1) collections, or it looks stalled between its commits.

Where this differs from Burrow (core/internal/evaluator/caching.go), and why:
- Burrow's window holds one entry per commit (it reads __consumer_offsets, which has commit
  times); mqwatch's holds one per collection, because OffsetFetch, all a monitor without
  access to __consumer_offsets gets, carries no commit times. Lagging is judged on the
  collections at which the position moved, which plays the part of Burrow's commits.
- Burrow's rule 3 flags STOPPED when the time since the last commit exceeds the window's
  span. mqwatch has no commit times and splits "position not moving" by activity instead:
  stalled while someone consumes (stuck), stopped when nobody does.
- Burrow warns when the lag did not decrease (a flat lag is a warning); mqwatch calls a
  flat lag with a moving position ok, and asks for a rise beyond one commit's worth.
- Burrow checks "lag was zero in the window" before REWIND; mqwatch reports a rewind first,
  since a caught-up consumer reset to the beginning (reprocessing) is news.
- Burrow ranks a rewind as the group's worst status; mqwatch ranks stalled and stopped
  above it: a rewind is often deliberate, a stuck partition pages and must not hide.
- Burrow evaluates whatever part of the window it has; mqwatch waits for a full window
  (except the stopped case above), so a fresh agent does not page on one sample.
- `allowed_lag` and transaction markers: Burrow 1.2 counts only lag 0 as caught up (later
  versions have allowed-lag); markers keep a caught-up transactional consumer at lag 1.

Memory: per partition six int32 stamps and `size` int64 positions and lags, in flat arrays
per consumer and queue; no object per partition or per observation. 100k partitions (the
benchmark's 10k partitions x 50 groups) at the default window: about 12 MB of Python heap,
less than the per-observation digests and offset tuples this replaced (about 14 MB at their
default window of 10).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

OK, LAGGING, STALLED, STOPPED, REWOUND = "ok", "lagging", "stalled", "stopped", "rewound"
STATUSES = (OK, LAGGING, STALLED, STOPPED, REWOUND)
# 5 collections at the default 15 s interval: a consumer that stops is reported within
# about 75 s (4 intervals without a move, plus up to one until the first unmoved sample).
DEFAULT_WINDOW = 5


def worst(statuses) -> str:
    """The most severe of some statuses (ok for none)."""
    for status in (STOPPED, STALLED, LAGGING, REWOUND):
        if status in statuses:
            return status
    return OK


class Verdict:
    """The status of one consumer on one queue, and of each of its partitions (same order
    as the partitions passed to observe())."""

    __slots__ = ("status", "partitions")

    def __init__(self, status: str, partitions: list[str]):
        self.status, self.partitions = status, partitions

    def __repr__(self) -> str:
        return f"Verdict({self.status!r}, {self.partitions!r})"


class _Window:
    """One consumer on one queue. Per partition, observation numbers (stamps) that make "in
    the window" one comparison: first seen, position last rose (the last commit point),
    position last fell, last caught up, and the commit points before the last drop and the
    last rise of the lag between two commit points (lagging needs a rise and no drop in the
    window, so most partitions are judged without reading the rings).
    Rings of positions and lags are slot-major (slot k holds every partition's value of
    observations k, k + size, ...), so one observation is stored with two slice copies."""

    __slots__ = ("parts", "seq", "first", "moved", "back", "caught", "dropped", "rose", "positions", "lags", "fresh")

    def __init__(self, parts: tuple, size: int):
        n = len(parts)
        self.parts, self.seq = parts, -1
        self.first, self.moved, self.back = array("i", bytes(4 * n)), array("i", bytes(4 * n)), array("i", bytes(4 * n))
        self.caught = array("i", [-1]) * n
        self.dropped = array("i", [-1]) * n
        self.rose = array("i", [-1]) * n
        self.positions, self.lags = array("q", bytes(8 * size * n)), array("q", bytes(8 * size * n))
        self.fresh = list(range(n))  # partitions not observed yet


class StatusTracker:
    """Keeps each consumer's window across collections.

    observe() once per collection per consumer and queue; retain() the keys still there.
    Positions must be comparable integers (Kafka committed offsets, Pulsar's consumed
    position); `positions_count_messages=False` when they are not message counts (Redis
    stream IDs), which drops the per-commit tolerance of the lagging rule to 0.
    """

    def __init__(self, size: int = DEFAULT_WINDOW, allowed_lag: int = 0, positions_count_messages: bool = True):
        if size < 2:
            raise ValueError("a status window needs at least 2 observations")
        self.size, self.allowed_lag, self.counts = size, allowed_lag, positions_count_messages
        self._windows: dict = {}

    def observe(self, key, positions: Sequence[int], lags: Sequence[int], active: bool,
                partitions: Sequence | None = None, caught_up: Sequence[bool] | None = None) -> Verdict:
        """positions, lags (messages), caught_up: one per partition, in the order of
        `partitions` (default 0..n-1). caught_up[i] true means partition i has nothing to
        consume whatever its lag says (Kafka: only transaction markers). active: the broker
        says someone consumes (members, a Stable group, a connected consumer)."""
        parts = tuple(partitions) if partitions is not None else tuple(range(len(positions)))
        if len(positions) != len(parts) or len(lags) != len(parts):
            raise ValueError(f"{len(parts)} partitions but {len(positions)} positions and {len(lags)} lags")
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = _Window(parts, self.size)
        elif w.parts != parts:
            w = self._windows[key] = self._remap(w, parts)
        w.seq += 1
        return self._judge(w, positions, lags, active, caught_up)

    def _judge(self, w: _Window, positions, lags, active, caught_up) -> Verdict:
        size, allowed, s, n = self.size, self.allowed_lag, w.seq, len(w.parts)
        new_pos = array("q", map(int, positions))
        if allowed == 0 and caught_up is None:
            new_lag = array("q", map(int, lags))
        else:
            quiet = caught_up if caught_up is not None else (False,) * n
            new_lag = array("q", [0 if lag <= allowed or q else int(lag) for lag, q in zip(lags, quiet)])
        here, there = (s % size) * n, ((s - 1) % size) * n
        before = w.positions[there:there + n]
        if w.fresh:  # first sight: nothing to compare with, so no move and no step back
            first = w.first
            for i in w.fresh:
                before[i] = new_pos[i]
                first[i] = w.moved[i] = w.back[i] = s
                w.caught[i] = s - 1
            w.fresh = []
        w.positions[here:here + n] = new_pos
        w.lags[here:here + n] = new_lag
        first, moved, back, caught, dropped, rose, ring_lag = w.first, w.moved, w.back, w.caught, w.dropped, w.rose, w.lags
        w0 = s - size + 1  # the window's first observation (later for partitions seen since)
        statuses = [OK] * n
        unmoved = []  # lagging partitions whose position did not move in their window
        moving = active
        for i, pos, old, lag in zip(range(n), new_pos, before, new_lag):
            if pos != old:
                if pos > old:
                    last = moved[i]  # the commit point before, if the ring still holds it
                    if s - last < size:
                        at_last = ring_lag[(last % size) * n + i]
                        if lag < at_last:
                            dropped[i] = last
                        elif lag > at_last:
                            rose[i] = last
                    moved[i] = s
                else:
                    back[i] = s
            if lag == 0:
                caught[i] = s
            start = first[i] if first[i] > w0 else w0
            went_on = moved[i] > start  # its position rose within its window
            if went_on:
                moving = True  # someone consumes this consumer's partitions
            if back[i] > start:
                statuses[i] = REWOUND
            elif caught[i] >= start:
                continue
            elif not went_on:
                unmoved.append(i)
            elif start == w0 and rose[i] > w0 and dropped[i] <= w0 and self._falling_behind(w, i, w0, s):
                statuses[i] = LAGGING
        for i in unmoved:
            if not moving:
                statuses[i] = STOPPED
            elif first[i] <= w0:  # a full window
                statuses[i] = STALLED
        return Verdict(worst(statuses), statuses)

    def _falling_behind(self, w: _Window, i: int, w0: int, s: int) -> bool:
        size, n, positions, lags = self.size, len(w.parts), w.positions, w.lags
        first_pos = first_lag = last_pos = last_lag = None
        points = 0
        prev = positions[(w0 % size) * n + i]
        for j in range(w0 + 1, s + 1):
            k = (j % size) * n + i
            pos = positions[k]
            if pos != prev:  # a commit point
                lag = lags[k]
                if last_lag is not None and lag < last_lag:
                    return False  # the lag fell: the consumer caught up some
                if first_lag is None:
                    first_pos, first_lag = pos, lag
                last_pos, last_lag = pos, lag
                points += 1
            prev = pos
        if points < 2:
            return False
        tolerance = (last_pos - first_pos) / (points - 1) if self.counts else 0
        return last_lag - first_lag > tolerance

    def _remap(self, old: _Window, parts: tuple) -> _Window:
        """Partitions were added or dropped: keep the history of those still there."""
        size, n, m = self.size, len(parts), len(old.parts)
        new = _Window(parts, size)
        new.seq, new.fresh = old.seq, []
        index = {p: j for j, p in enumerate(old.parts)}
        for i, p in enumerate(parts):
            j = index.get(p)
            if j is None:
                new.fresh.append(i)
                continue
            for stamps in ("first", "moved", "back", "caught", "dropped", "rose"):
                getattr(new, stamps)[i] = getattr(old, stamps)[j]
            for k in range(size):
                new.positions[k * n + i] = old.positions[k * m + j]
                new.lags[k * n + i] = old.lags[k * m + j]
        return new

    def forget(self, key) -> None:
        """Start a key's window afresh, e.g. when its positions were renumbered rather than rewound."""
        self._windows.pop(key, None)

    def retain(self, keys) -> None:
        keys = set(keys)
        for k in [k for k in self._windows if k not in keys]:
            del self._windows[k]
