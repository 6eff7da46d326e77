"""Recent (time, value) points of a check's series, for the status page's sparklines.

Every series recorded in a cycle gets that cycle's time, and a series missing from a
cycle is dropped, so the points of any series are the last N cycles' times. One deque
of times therefore serves all series, and each series keeps only its values, as a
packed array of doubles: 8 bytes a point, against 88 for a (time, value) tuple and 32
for a float object in a deque (2,000 lag series x 60 points: 0.9 MB instead of 3.8 MB).
"""

from __future__ import annotations

from array import array
from collections import deque


class SeriesHistory:
    def __init__(self, points: int):
        self.points = points
        self._times: deque = deque(maxlen=points)
        self._values: dict = {}  # key -> deque of values, newest last

    def record(self, now: float, items) -> None:
        """One cycle's (key, value) pairs; series not among them are forgotten."""
        self._times.append(now)
        old, kept = self._values, {}
        for key, value in items:
            values = old.get(key)
            if values is None:
                values = array("d")
            values.append(value)
            if len(values) > self.points:
                del values[0]
            kept[key] = values  # keyed by this cycle's key object, so old snapshots' labels are freed
        self._values = kept

    def get(self, key, default=()):
        """The series' points as [(time, value), ...], oldest first."""
        values = self._values.get(key)
        if values is None:
            return default
        times = list(self._times)[len(self._times) - len(values):]
        return list(zip(times, values))

    def __contains__(self, key) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self):
        return iter(self._values)
