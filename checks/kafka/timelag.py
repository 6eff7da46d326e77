"""Lag in seconds per (group, topic, partition): estimated from end-offset history, or exact.

estimate: agent.timelag.OffsetTimeline dates a committed offset by when the end offset
passed it (error at most one collection interval). While the history does not reach
back to a committed offset (a fresh agent, a consumer far behind), the estimate would
only be an extrapolation or a bound, so that partition is read exactly instead.

exact: read the first record at or after the committed offset and take its timestamp.
The timestamp of a given offset never changes, so each (partition, offset) is read once
and cached until the consumer commits past it: a stopped consumer costs one read, not
one per cycle. At most `max_fetches` partitions are read per cycle, all in one assign()
(one Fetch per leader), within `fetch_timeout`.

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

    def compute(self, lagging: dict, end_offsets: dict, now: float, reader, time_left: float) -> TimeLagResult:
        """Dates committed offsets that lag.

        lagging: (topic, partition, committed offset) -> lag in messages, one entry per distinct
        committed offset however many groups sit at it (at 10k partitions x 50 groups, groups
        sharing offsets make this several times smaller than the committed offsets).
        reader: a RecordReader. A caught-up partition is 0 s and needs no entry.
        """
        result = TimeLagResult({})
        if self.mode == "off":
            return result
        needed: dict = {}  # (topic, partition, committed) -> lag in messages, to be read
        fallback: dict = {}
        estimate_mode = self.mode == "estimate"
        estimate = self.timeline.estimate
        for key, lag in lagging.items():
            topic, p, c = key
            est = estimate((topic, p), c, now)
            if est is not None:
                # One message behind on a partition nobody writes to: often a transaction
                # marker (KAFKA-10683), which has no age. Only a read can tell, and its
                # answer is kept while the consumer stays there.
                marker_suspect = lag == 1 and self.timeline.unchanged((topic, p))
                if estimate_mode and est.method in (INTERPOLATED, CAUGHT_UP) and not marker_suspect:
                    result.seconds[key] = est.seconds
                    continue
                if est.method != LOWER_BOUND:
                    # Used if the read does not answer. A lower bound from a short history is
                    # near 0 for any lag, so it is worse than no value.
                    fallback[key] = est.seconds
            needed[key] = lag

        self._read_missing(needed, end_offsets, reader, time_left, result)
        self.last_reads = result.read
        exact = self._exact
        for key in needed:
            ts = exact.get(key)
            if ts is NOTHING_TO_READ:
                result.seconds[key] = 0.0
                result.nothing_to_read.add(key)
            elif ts is not None and ts is not NO_TIMESTAMP:
                result.seconds[key] = max(0.0, now - ts)
            elif key in fallback:
                result.seconds[key] = fallback[key]
        self._exact = {k: v for k, v in exact.items() if k in needed}
        return result

    def _read_missing(self, needed: dict, end_offsets: dict, reader, time_left: float, result: TimeLagResult) -> None:
        missing = [k for k in needed if k not in self._exact]
        # The biggest lags first; one offset per partition per read (an assignment has one position).
        missing.sort(key=lambda k: -needed[k])
        ranges: dict = {}
        for topic, p, c in missing:
            if (topic, p) not in ranges and len(ranges) < self.max_fetches:
                ranges[(topic, p)] = (c, end_offsets[(topic, p)])
        result.deferred = len(missing) - len(ranges)
        timeout = min(self.fetch_timeout, time_left)
        if not ranges:
            return
        if timeout <= 0.05:
            result.unread = len(ranges)
            return
        got = reader.read(ranges, timeout, max_records_per_partition=1)
        result.read = len(ranges)
        for (topic, p), (c, _) in ranges.items():
            recs = got.records.get((topic, p))
            if recs:
                ts = recs[0].timestamp
                self._exact[(topic, p, c)] = NO_TIMESTAMP if ts is None else ts
            elif (topic, p) in got.complete:
                self._exact[(topic, p, c)] = NOTHING_TO_READ
            else:
                result.unread += 1
        result.errors.extend(f"{t}[{p}]: {msg}" for t, p, msg in got.errors)


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
