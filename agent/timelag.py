"""Lag in seconds estimated from a history of end offsets, for any offset-based queue.

Each cycle records, per partition, the end offset and when it was seen. A committed
offset c is then dated by when the end offset passed c: between the last time the end
offset was seen at or below c and the first time it was seen above c. Within that
interval the time is interpolated linearly by offset.

Error bound: the estimate is off by at most the gap between those two observations
(one collection interval in steady state). When c is older than the whole history, the
time is extrapolated backwards with the average produce rate over the history and
reported as such; with no produce rate to go by, the lag is reported as a lower bound
(now minus the oldest observation), never as an invented number.
"""

from __future__ import annotations

from bisect import bisect_right
from operator import attrgetter
from dataclasses import dataclass

INTERPOLATED, EXTRAPOLATED, LOWER_BOUND, CAUGHT_UP = "interpolated", "extrapolated", "lower_bound", "caught_up"
_offset = attrgetter("offset")


@dataclass(slots=True)
class _Point:
    offset: int
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class Estimate:
    seconds: float
    method: str  # interpolated | extrapolated | lower_bound | caught_up
    error_seconds: float  # how far off the estimate can be (0 when caught up)


class OffsetTimeline:
    """Bounded end-offset history per key (for example (topic, partition))."""

    def __init__(self, max_points: int = 120):
        self.max_points = max_points
        self._hist: dict = {}

    def observe(self, key, end_offset: int, at: float) -> None:
        hist = self._hist.get(key)
        if hist is None:
            # A plain list, not a deque: one history per partition, and an empty deque alone
            # costs ~600 bytes, which at 10,000s of partitions is most of the agent's heap.
            hist = self._hist[key] = []
        if hist and end_offset < hist[-1].offset:
            hist.clear()  # the partition was recreated or truncated: old dates no longer apply
        if hist and hist[-1].offset == end_offset:
            hist[-1].last_seen = at
        else:
            hist.append(_Point(end_offset, at, at))
            if len(hist) > self.max_points:
                del hist[0]

    def points(self, key) -> int:
        return len(self._hist.get(key, ()))

    def unchanged(self, key) -> bool:
        """The end offset was the same at the last two observations (nothing was written)."""
        hist = self._hist.get(key)
        return bool(hist) and hist[-1].first_seen < hist[-1].last_seen

    def retain(self, keys) -> None:
        keys = set(keys)
        for k in list(self._hist):
            if k not in keys:
                del self._hist[k]

    def estimate(self, key, committed: int, now: float) -> Estimate | None:
        """Lag in seconds of a consumer whose next record to read is `committed`."""
        hist = self._hist.get(key)
        if not hist:
            return None
        newest = hist[-1]
        if committed >= newest.offset:
            return Estimate(0.0, CAUGHT_UP, 0.0)
        # The record at `committed` appeared after the end offset was last seen at or
        # below it and no later than the end offset was first seen above it. Offsets in
        # the history only grow (a drop clears it), so a binary search finds that pair:
        # this runs for every group and partition each cycle.
        i = bisect_right(hist, committed, key=_offset)
        if i > 0:
            prev, p = hist[i - 1], hist[i]
            span = p.offset - prev.offset
            frac = (committed - prev.offset + 1) / span
            t = prev.last_seen + frac * (p.first_seen - prev.last_seen)
            return Estimate(max(0.0, now - t), INTERPOLATED, p.first_seen - prev.last_seen)
        oldest = hist[0]
        if len(hist) >= 2 and newest.first_seen > oldest.first_seen:
            rate = (newest.offset - oldest.offset) / (newest.first_seen - oldest.first_seen)
            if rate > 0:
                t = oldest.first_seen - (oldest.offset - committed) / rate
                return Estimate(max(0.0, now - t), EXTRAPOLATED, max(0.0, oldest.first_seen - t))
        return Estimate(max(0.0, now - oldest.first_seen), LOWER_BOUND, float("inf"))
