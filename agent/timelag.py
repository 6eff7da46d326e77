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

from array import array
from bisect import bisect_right
from dataclasses import dataclass

INTERPOLATED, EXTRAPOLATED, LOWER_BOUND, CAUGHT_UP = "interpolated", "extrapolated", "lower_bound", "caught_up"


@dataclass(frozen=True)
class Estimate:
    seconds: float
    method: str  # interpolated | extrapolated | lower_bound | caught_up
    error_seconds: float  # how far off the estimate can be (0 when caught up)


class OffsetTimeline:
    """Bounded end-offset history per key (for example (topic, partition)).

    Per key, two packed arrays rather than an object per point: the end offsets seen (int64)
    and, for each, when it was first and last seen (two doubles). A point costs 24 bytes, where
    a point object with its int and two floats took about 140 (a busy partition keeps up to
    max_points of them: 10,000 partitions x 120 points was 170 MB), and seeing an unchanged
    end offset again updates a double in place instead of allocating a float every cycle.
    """

    def __init__(self, max_points: int = 120):
        self.max_points = max_points
        self._hist: dict = {}  # key -> (array "q" of offsets, array "d" of first_seen, last_seen pairs)

    def observe(self, key, end_offset: int, at: float) -> None:
        hist = self._hist.get(key)
        if hist is None:
            hist = self._hist[key] = (array("q"), array("d"))
        offsets, seen = hist
        if offsets and end_offset < offsets[-1]:
            del offsets[:], seen[:]  # the partition was recreated or truncated: old dates no longer apply
        if offsets and offsets[-1] == end_offset:
            seen[-1] = at
        else:
            offsets.append(end_offset)
            seen.extend((at, at))
            if len(offsets) > self.max_points:
                del offsets[0], seen[:2]

    def points(self, key) -> int:
        hist = self._hist.get(key)
        return len(hist[0]) if hist else 0

    def unchanged(self, key) -> bool:
        """The end offset was the same at the last two observations (nothing was written)."""
        hist = self._hist.get(key)
        return bool(hist and hist[0]) and hist[1][-2] < hist[1][-1]

    def retain(self, keys) -> None:
        keys = set(keys)
        for k in list(self._hist):
            if k not in keys:
                del self._hist[k]

    def estimate(self, key, committed: int, now: float) -> Estimate | None:
        """Lag in seconds of a consumer whose next record to read is `committed`."""
        hist = self._hist.get(key)
        if not hist or not hist[0]:
            return None
        offsets, seen = hist
        newest = len(offsets) - 1
        if committed >= offsets[newest]:
            return Estimate(0.0, CAUGHT_UP, 0.0)
        # The record at `committed` appeared after the end offset was last seen at or
        # below it and no later than the end offset was first seen above it. Offsets in
        # the history only grow (a drop clears it), so a binary search finds that pair:
        # this runs for every group and partition each cycle.
        i = bisect_right(offsets, committed)
        if i > 0:
            prev_offset, prev_last, first = offsets[i - 1], seen[2 * i - 1], seen[2 * i]
            frac = (committed - prev_offset + 1) / (offsets[i] - prev_offset)
            t = prev_last + frac * (first - prev_last)
            return Estimate(max(0.0, now - t), INTERPOLATED, first - prev_last)
        oldest_first = seen[0]
        if newest >= 1 and seen[2 * newest] > oldest_first:
            rate = (offsets[newest] - offsets[0]) / (seen[2 * newest] - oldest_first)
            if rate > 0:
                t = oldest_first - (offsets[0] - committed) / rate
                return Estimate(max(0.0, now - t), EXTRAPOLATED, max(0.0, oldest_first - t))
        return Estimate(max(0.0, now - oldest_first), LOWER_BOUND, float("inf"))
