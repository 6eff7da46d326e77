"""Canary bookkeeping shared by every system: round-trip histogram, failures by stage, and
sequence-numbered messages -> lost, duplicated and reordered counts.

A canary numbers its messages 1, 2, 3, ... within one run (a run id tells its messages
from an earlier process's). The broker's acknowledgement of message n opens it; consuming
it closes it. Then:

- lost: acknowledged, and not consumed within `grace` seconds. A message that still comes
  back later is counted as reordered too (a counter never goes down), so a slow broker
  shows as both; `grace` should be well above the canary's timeout.
- duplicated: consumed again after it was consumed once (a replay, a redelivery after an
  acknowledgement was lost, a producer retry without idempotence).
- reordered: consumed after a message with a higher number was consumed.

Memory is bounded: at most MAX_OPEN open messages (the oldest beyond that count as lost)
and the last MAX_CLOSED consumed numbers are remembered; an unknown number at or below the
highest consumed one that is not open is a duplicate.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict, deque

from mqwatch.agent.snapshot import Histogram

STAGES = ("produce", "consume", "timeout")
# Round trips on a healthy cluster take milliseconds; the upper buckets catch a struggling one.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class CanaryStats:
    """Histogram and failure counters, written by the canary thread, read by collections."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = [0] * (len(BUCKETS) + 1)
        self._sum = 0.0
        self.failures = {s: 0 for s in STAGES}

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._sum += seconds

    def fail(self, stage: str) -> None:
        with self._lock:
            self.failures[stage] += 1

    def histogram(self) -> Histogram:
        with self._lock:
            cumulative, running = [], 0
            for bound, n in zip(BUCKETS + (float("inf"),), self._counts):
                running += n
                cumulative.append((bound, float(running)))
            return Histogram(tuple(cumulative), self._sum)

    def failure_counts(self) -> dict:
        with self._lock:
            return dict(self.failures)


MAX_OPEN = 10_000
MAX_CLOSED = 10_000


class SequenceTracker:
    def __init__(self, grace: float):
        self.grace = grace
        self.lost = self.duplicated = self.reordered = 0
        self._open: OrderedDict = OrderedDict()  # seq -> deadline, oldest first
        self._lost_recent: deque = deque(maxlen=MAX_CLOSED)  # numbers counted lost, to tell a late arrival
        self._consumed: set = set()
        self._consumed_order: deque = deque()
        self._highest = 0  # highest number consumed
        self._lock = threading.Lock()  # the Kafka canary's thread writes, collections read

    def acknowledged(self, seq: int, now: float) -> None:
        with self._lock:
            if seq in self._consumed:  # consumed before the acknowledgement arrived
                return
            self._open[seq] = now + self.grace
            while len(self._open) > MAX_OPEN:
                old, _ = self._open.popitem(last=False)
                self._count_lost(old)

    def consumed(self, seq: int) -> None:
        with self._lock:
            if seq in self._consumed:
                self.duplicated += 1
                return
            late = False
            if seq in self._open:
                del self._open[seq]
            elif seq in self._lost_recent:
                late = True  # it came back after all, after `grace`
                self._lost_recent.remove(seq)
            elif seq <= self._highest:
                self.duplicated += 1  # older than what is remembered: it was consumed before
                return
            if late or seq < self._highest:
                self.reordered += 1
            self._highest = max(self._highest, seq)
            self._consumed.add(seq)
            self._consumed_order.append(seq)
            if len(self._consumed_order) > MAX_CLOSED:
                self._consumed.discard(self._consumed_order.popleft())

    def expire(self, now: float) -> None:
        """Count messages open past their deadline as lost."""
        with self._lock:
            for seq in [s for s, deadline in self._open.items() if deadline <= now]:
                del self._open[seq]
                self._count_lost(seq)

    def counts(self) -> tuple[int, int, int]:
        with self._lock:
            return self.lost, self.duplicated, self.reordered

    def _count_lost(self, seq: int) -> None:
        self.lost += 1
        self._lost_recent.append(seq)


def emit_sequence(out, counts: tuple[int, int, int]) -> None:
    """The three canary sequence counters, the same way for every system."""
    lost, duplicated, reordered = counts
    out.add("mqwatch_canary_lost_messages_total", lost)
    out.add("mqwatch_canary_duplicated_messages_total", duplicated)
    out.add("mqwatch_canary_reordered_messages_total", reordered)
