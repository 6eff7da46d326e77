"""Consumer status from a sliding window of observations: ok, lagging, stalled, stopped, rewound.

Pure functions over plain data, shared by every system (Kafka groups, Pulsar
subscriptions, Redis stream groups). The rules, checked in this order:

- rewound: a committed offset went backwards between two observations in the window.
- ok: lag was zero at some point in the window.
- stalled / stopped: lag > 0 and no committed offset moved across the whole window;
  stalled when the consumer is active (members, or a Stable/rebalancing group), stopped
  when it is not (nobody is consuming).
- lagging: offsets move but lag never decreased between two observations of the window
  (steady or growing: the consumer does not keep up).
- ok otherwise (lag decreased at some point).

Until the window is full the status is ok, except that an inactive consumer with lag > 0
whose offsets have not moved is stopped from its first observation.

Where this differs from Burrow: Burrow calls a consumer whose offsets stopped "stalled"
whether or not it has members and uses the time since the last commit to flag "stopped";
mqwatch separates the two by membership, because "alive but stuck" and "nobody is
consuming" need different responses. tests/test_status.py lists every difference, with
Burrow's rules as cases.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

OK, LAGGING, STALLED, STOPPED, REWOUND = "ok", "lagging", "stalled", "stopped", "rewound"
STATUSES = (OK, LAGGING, STALLED, STOPPED, REWOUND)
DEFAULT_WINDOW = 10


@dataclass(frozen=True, slots=True)
class Observation:
    position: int  # digest of the committed offsets: equal digests mean no offset moved
    lag: float
    active: bool  # members present, or the broker reports the group Stable or rebalancing
    went_back: bool = False  # a committed offset is lower than in the observation before


def observation(previous: tuple | None, offsets: tuple, lag: float, active: bool) -> Observation:
    """offsets: committed offsets, one per partition in a stable order (or one sum);
    previous: those of the observation before, if any.

    A window keeps digests, not the offsets: a group on a 100-partition topic would
    otherwise hold 100 offsets per observation (at 10k partitions x 50 groups and a window
    of 10, about 8 MB of tuples that only ever get compared).
    """
    went_back = previous is not None and _went_back(previous, offsets)
    return Observation(hash(offsets), float(lag), bool(active), went_back)


def evaluate(window: list[Observation], size: int = DEFAULT_WINDOW) -> str:
    if not window:
        return OK
    if any(o.went_back for o in window[1:]):  # the first one's predecessor left the window
        return REWOUND
    last = window[-1]
    if any(o.lag == 0 for o in window):
        return OK
    moved = window[0].position != last.position
    if len(window) < size:
        return STOPPED if (not last.active and not moved) else OK
    if not moved:
        return STALLED if last.active else STOPPED
    lags = [o.lag for o in window]
    if all(b >= a for a, b in zip(lags, lags[1:])):
        return LAGGING
    return OK


def _went_back(prev: tuple, cur: tuple) -> bool:
    if len(prev) != len(cur):  # partitions added or a partition's offset vanished: not a rewind
        return False
    return any(c < p for p, c in zip(prev, cur))


class StatusTracker:
    """Keeps the window per consumer key across collections; forget keys that vanished."""

    def __init__(self, size: int = DEFAULT_WINDOW):
        self.size = size
        self._windows: dict = {}
        self._last: dict = {}  # key -> offsets of its newest observation, to tell a rewind

    def observe(self, key, offsets, lag: float, active: bool) -> str:
        offsets = tuple(offsets)
        previous = self._last.get(key)
        win = self._windows.get(key)
        if win is None:
            win = self._windows[key] = deque(maxlen=self.size)
        win.append(observation(previous, offsets, lag, active))
        if offsets != previous:  # unchanged: keep the old tuple, not a new one that outlives the cycle
            self._last[key] = offsets
        return evaluate(list(win), self.size)

    def forget(self, key) -> None:
        """Start a key's window afresh, e.g. when its offsets were renumbered rather than rewound."""
        self._windows.pop(key, None)
        self._last.pop(key, None)

    def retain(self, keys) -> None:
        keys = set(keys)
        for k in list(self._windows):
            if k not in keys:
                del self._windows[k]
                self._last.pop(k, None)
