"""Lag in seconds per (group, topic, partition): estimated from end-offset history, or exact.

estimate: agent.timelag.OffsetTimeline dates a committed offset by when the end offset
passed it (error at most one collection interval). While the history does not reach
back to a committed offset (a fresh agent, a consumer far behind), the estimate would
only be an extrapolation or a bound, so that partition is read exactly instead.

exact: read the first record at or after the committed offset and take its timestamp.
The timestamp of a given offset never changes, so each (partition, offset) is read once
and cached until the consumer commits past it: a stopped consumer costs one read, not
one per cycle. At most `max_fetches` partitions are read per cycle, each read within `fetch_timeout`,
in rounds of one assign() each (one Fetch per leader) as the groups' offsets come in (Dating).

What is reported where the log does not hold the committed record:
- deleted by retention or compacted away: the first record after it is read instead; its
  age is a lower bound of the true lag (the missing record was older), not an error.
- nothing readable after it (only transaction markers): nothing is waiting, 0.
- a record without a timestamp: no exact value; an interpolated or extrapolated
  estimate is used if there is one (a mere lower bound from a short history would be
  near 0 for any lag, so then no value is reported).
- a timestamp from the future (producer clock): 0, never a negative lag.
- a partition over the cycle's read budget: as for no timestamp, and read in a later
  cycle (not an error: the budget is what keeps a cycle's cost bounded).
- a read that fails or does not answer in time: as for no timestamp, counted in
  mqwatch_collect_errors_total{reason="time_lag"}.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from mqwatch.agent.timelag import CAUGHT_UP, INTERPOLATED, LOWER_BOUND, OffsetTimeline

NOTHING_TO_READ = object()  # only transaction markers (or nothing) at or after the offset
NO_TIMESTAMP = object()  # the record has no usable timestamp


@dataclass
class TimeLagResult:
    seconds: dict  # (topic, partition, committed offset) -> seconds
    read: int = 0  # partitions read this cycle
    deferred: int = 0  # over the per-cycle read budget: read in a later cycle, by design
    unread: int = 0  # read but not answered within the cycle's time (or no time was left)
    errors: list = field(default_factory=list)  # messages of failed reads
    # (topic, partition, committed) with nothing but transaction markers at or after the
    # committed offset: the consumer is caught up whatever its lag in messages says.
    nothing_to_read: set = field(default_factory=set)


class TimeLag:
    def __init__(self, mode: str, max_fetches: int, fetch_timeout: float, history_points: int = 120):
        self.mode, self.max_fetches, self.fetch_timeout = mode, max_fetches, fetch_timeout
        self.timeline = OffsetTimeline(history_points)
        self._exact: dict = {}  # (topic, partition, committed) -> timestamp | NOTHING_TO_READ
        self._ends: dict = {}  # (topic, partition) -> last end offset, to notice a recreated topic
        self.last_reads = 0  # partitions read in the last cycle (tests, debugging)

    def observe_ends(self, end_offsets: dict, at: float) -> None:
        for tp, end in end_offsets.items():
            if end < self._ends.get(tp, -1):  # recreated or truncated: cached dates are void
                self._exact = {k: v for k, v in self._exact.items() if (k[0], k[1]) != tp}
            self._ends[tp] = end
            self.timeline.observe(tp, end, at)
        self.timeline.retain(end_offsets)
        self._ends = {tp: e for tp, e in self._ends.items() if tp in end_offsets}

    def begin(self, end_offsets: dict, now: float, reader, time_left: float) -> Dating:
        """One cycle's dating of committed offsets (after observe_ends of the same end offsets)."""
        return Dating(self, end_offsets, now, reader, time_left)


class Dating:
    """One cycle's dating, fed with lagging committed offsets as the groups' replies come in.

    add(lagging): (topic, partition, committed offset) -> lag in messages, one entry per
    distinct committed offset however many groups sit at it (at 10k partitions x 50 groups,
    groups sharing offsets make this several times smaller than the committed offsets). A
    caught-up partition is 0 s and needs no entry. What the end-offset history dates is
    settled at once; the rest must be read.

    read_ahead(): from then on a thread reads what add() queues, a round at a time, biggest
    lags first in each round, while the caller waits for the next groups (a fresh agent reads
    hundreds of records in its first cycle; read after the last group they were a twentieth
    of the cycle). settle(keys) puts the final answer of those keys that have one into
    `result`, so a group's lag in seconds and status can be built early. finish() reads what
    is left and gives the cycle's result. The cycle's reads share `max_fetches` partitions;
    each round waits at most `fetch_timeout` (within the collection's time) and reads one
    offset per partition (an assignment has one position), so several offsets on one
    partition take several rounds.
    """

    def __init__(self, time_lag: TimeLag, end_offsets: dict, now: float, reader, time_left: float):
        self._tl, self._ends, self.now, self._reader = time_lag, end_offsets, now, reader
        self._deadline = time.monotonic() + time_left  # the collection's: no read may outlast it
        self.result = TimeLagResult({})
        self._needed: dict = {}  # key -> lag: keys only a read can date (or whose read is cached)
        self._fallback: dict = {}  # key -> an estimate for when the read gives nothing
        self._queued: dict = {}  # key -> lag: to read, not taken by a round yet
        self._in_flight: set = set()  # keys the round under way reads
        self._budget = time_lag.max_fetches
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.rounds = 0  # read rounds ended so far (however they ended): settle() can only say more after one
        self.next_round: Future = Future()  # done when the round under way (or the next) ends

    def add(self, lagging: dict) -> None:
        tl, result = self._tl, self.result
        if tl.mode == "off":
            return
        estimate_mode = tl.mode == "estimate"
        estimate, unchanged = tl.timeline.estimate, tl.timeline.unchanged
        now, seconds, needed, exact = self.now, result.seconds, self._needed, tl._exact
        queued = []
        for key, lag in lagging.items():
            if key in needed or key in seconds:
                continue
            topic, p, c = key
            est = estimate((topic, p), c, now)
            if est is not None:
                # One message behind on a partition nobody writes to: often a transaction
                # marker (KAFKA-10683), which has no age. Only a read can tell, and its
                # answer is kept while the consumer stays there.
                marker_suspect = lag == 1 and unchanged((topic, p))
                if estimate_mode and est.method in (INTERPOLATED, CAUGHT_UP) and not marker_suspect:
                    seconds[key] = est.seconds
                    continue
                if est.method != LOWER_BOUND:
                    # Used if the read does not answer. A lower bound from a short history is
                    # near 0 for any lag, so it is worse than no value.
                    self._fallback[key] = est.seconds
            needed[key] = lag
            if key not in exact:
                queued.append((key, lag))
        if queued:
            with self._lock:
                self._queued.update(queued)
                self._lock.notify()

    def read_ahead(self) -> None:
        if self._thread is None and self._tl.mode != "off":
            self._thread = threading.Thread(target=self._read_rounds, name="kafka-time-lag", daemon=True)
            self._thread.start()

    def settle(self, keys) -> list:
        """Puts the final answer of each of `keys` (lagging, added) that has one into `result`
        (seconds, nothing_to_read); returns the keys still waiting for a read."""
        seconds, exact, queued, in_flight = self.result.seconds, self._tl._exact, self._queued, self._in_flight
        waiting = []
        with self._lock:
            # Once the budget is spent, what is queued waits for a later cycle: final too.
            spent = self._budget <= 0
            for key in keys:
                if key in seconds:
                    continue
                if key in in_flight or (key in queued and not spent):
                    waiting.append(key)
                else:  # read, read without an answer, or deferred
                    self._settle(key, exact.get(key))
        return waiting

    def _settle(self, key, ts) -> None:
        result = self.result
        if ts is NOTHING_TO_READ:
            result.seconds[key] = 0.0
            result.nothing_to_read.add(key)
        elif ts is not None and ts is not NO_TIMESTAMP:
            result.seconds[key] = max(0.0, self.now - ts)
        elif key in self._fallback:
            result.seconds[key] = self._fallback[key]

    def close(self) -> None:
        """Ends the reads ahead (after the round under way); finish() does this too."""
        with self._lock:
            self._closing = True
            self._lock.notify()

    def finish(self) -> TimeLagResult:
        """Ends the reads ahead, reads what is still queued, and dates every key added."""
        self.close()
        if self._thread is not None:
            # a round waits at most fetch_timeout (and the reader's grace for its child)
            self._thread.join(max(0.0, min(self._tl.fetch_timeout, self._deadline - time.monotonic())) + 2.0)
        result, exact = self.result, self._tl._exact
        if self._thread is None or not self._thread.is_alive():  # a read still under way is abandoned
            while self._read_round():
                pass
        result.deferred += len(self._queued)
        self._tl.last_reads = result.read
        for key in self._needed:
            if key not in result.seconds:
                self._settle(key, exact.get(key))
        self._tl._exact = {k: v for k, v in exact.items() if k in self._needed}
        return result

    def _round_ended(self) -> None:
        """(under the lock) Counts the round and wakes whoever waits for it."""
        self.rounds += 1
        ended, self.next_round = self.next_round, Future()
        ended.set_result(self.rounds)

    def _read_rounds(self) -> None:
        while True:
            with self._lock:
                while not (self._queued and self._budget > 0) and not self._closing:
                    self._lock.wait()
                if self._closing:
                    return
            self._read_round()

    def _read_round(self) -> bool:
        """Reads the queued keys, biggest lags first, one offset per partition, within the budget
        (a key whose partition is taken waits for the next round). Whether another round may read more."""
        result = self.result
        with self._lock:
            order = sorted(self._queued, key=lambda k: -self._queued[k])
            ranges: dict = {}
            for topic, p, c in order:
                if len(ranges) >= self._budget:
                    break
                if (topic, p) not in ranges:
                    ranges[(topic, p)] = (c, self._ends[(topic, p)])
                    del self._queued[(topic, p, c)]
            self._budget -= len(ranges)
            self._in_flight = {(t, p, c) for (t, p), (c, _) in ranges.items()}
        if not ranges:
            return False
        timeout = min(self._tl.fetch_timeout, self._deadline - time.monotonic())
        if timeout <= 0.05:
            with self._lock:
                self._in_flight = set()
                result.unread += len(ranges)
                self._budget = 0
                self._round_ended()
            return False
        try:
            got = self._reader.read(ranges, timeout, max_records_per_partition=1)
        except Exception as e:  # e.g. the reader's child could not start: no more reads this cycle
            with self._lock:
                self._in_flight = set()
                result.errors.extend(f"{t}[{p}]: {type(e).__name__}: {e}" for t, p in ranges)
                self._budget = 0
                self._round_ended()
            return False
        exact = self._tl._exact
        with self._lock:
            self._in_flight = set()
            result.read += len(ranges)
            for (topic, p), (c, _) in ranges.items():
                recs = got.records.get((topic, p))
                if recs:
                    ts = recs[0].timestamp
                    exact[(topic, p, c)] = NO_TIMESTAMP if ts is None else ts
                elif (topic, p) in got.complete:
                    exact[(topic, p, c)] = NOTHING_TO_READ
                else:
                    result.unread += 1
            result.errors.extend(f"{t}[{p}]: {msg}" for t, p, msg in got.errors)
            self._round_ended()
            return bool(self._queued)


def lag_seconds(dates: dict, lags: dict, offsets_of, per_partition: bool = True) -> tuple[dict, dict]:
    """(group, topic) -> worst partition's seconds, and (group, topic, partition) -> seconds
    (left empty unless per_partition: 100k entries at 10k partitions x 50 groups).

    dates: TimeLagResult.seconds. lags: group -> topic -> partition -> lag in messages.
    offsets_of(group) -> {(topic, partition): committed offset}. A caught-up partition is
    0 s. A topic with lagging partitions of which none could be dated gets no value (never
    a made-up 0); if some could, the worst of those is a lower bound of the true worst.
    """
    worst: dict = {}
    partitions: dict = {}
    for gid, topics in lags.items():
        offsets = offsets_of(gid)
        for topic, parts in topics.items():
            top = None
            lagging = lagging_dated = False
            for p, lag in parts.items():
                if lag <= 0:
                    s = 0.0
                else:
                    lagging = True
                    s = dates.get((topic, p, offsets[(topic, p)]))
                    if s is None:
                        continue
                    lagging_dated = True
                if per_partition:
                    partitions[(gid, topic, p)] = s
                if top is None or s > top:
                    top = s
            if top is not None and (lagging_dated or not lagging):
                worst[(gid, topic)] = top
    return worst, partitions
