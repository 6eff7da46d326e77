"""Dead-letter and retry topics: which topics they are, their size, arrivals and reasons.

Arrivals are the high watermarks (every record ever appended), each partition fed to
agent.counters.Counters on its own, so `mqwatch_dlq_messages_total` keeps counting when
retention or a re-processing job empties the DLQ, survives a recreated topic, and does
not move when one partition's end offset is missing for a cycle.

Reasons come from sampling: each cycle at most `reasons.sample` dead letters that
arrived since the last cycle are read, newest first, in one read for all DLQ partitions.
A partition's read position only moves past what was read, so nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mqwatch.agent.counters import Counters
from mqwatch.agent.dlq import UNKNOWN, ReasonCounts, normalize_reason
from mqwatch.checks.kafka.reasons import original_topic, reason_of

DLQ, RETRY = "dlq", "retry"


@dataclass
class DlqCycle:
    """What one cycle found, for the check to emit."""

    dlqs: dict = field(default_factory=dict)  # dlq topic -> source
    learn_source: set = field(default_factory=set)  # DLQs whose source comes from headers
    retries: dict = field(default_factory=dict)  # retry topic -> source
    sampled: int = 0
    problems: list = field(default_factory=list)  # (reason, message)


def classify(topic: str, options) -> tuple[str, str] | None:
    """(DLQ or RETRY, source topic) for a dead-letter or retry topic name, else None.

    A DLQ mapped to an empty source gets its source from its dead letters' headers.
    """
    mapped = options.topics.get(topic)
    if mapped is not None:
        return DLQ, str(mapped)
    for pattern in options.retry_patterns:
        m = pattern.search(topic)
        if m and m.group("source"):
            return RETRY, m.group("source")
    for pattern in options.patterns:
        m = pattern.search(topic)
        if m and m.group("source"):
            return DLQ, m.group("source")
    return None


class DlqTracker:
    def __init__(self, dlq_options, reason_options):
        self.dlq_options, self.reason_options = dlq_options, reason_options
        self.arrivals = Counters()
        self.reasons = ReasonCounts(reason_options.top, reason_options.mode)
        self.last_timestamp: dict = {}  # dlq -> unix time of its newest record seen
        self.learned_source: dict = {}  # dlq -> source topic named by its newest dead letter's headers
        self._read_upto: dict = {}  # (topic, partition) -> next offset not yet sampled

    def find(self, topics) -> DlqCycle:
        cycle = DlqCycle()
        for topic in topics:
            kind = classify(topic, self.dlq_options)
            if kind is not None:
                (cycle.dlqs if kind[0] == DLQ else cycle.retries)[topic] = kind[1]
                if kind == (DLQ, ""):
                    cycle.learn_source.add(topic)
        return cycle

    def update(self, cycle: DlqCycle, view, reader, time_left: float) -> None:
        dlq_parts = {(t, p) for t in cycle.dlqs for p in view.topics[t]}
        for dlq in cycle.dlqs:
            # Each partition on its own: one whose end offset is unknown this cycle adds nothing,
            # and a recreated topic's partitions start over (their new ends are arrivals).
            for p in view.topics[dlq]:
                end = view.end_offsets.get((dlq, p))
                if end is not None:
                    self.arrivals.observe(dlq, end, upstream=p)
        self._sample(cycle, view, dlq_parts, reader, time_left)
        for dlq in cycle.learn_source:
            cycle.dlqs[dlq] = self.learned_source.get(dlq, UNKNOWN)
        # State of DLQs that vanished (deleted, filtered out) goes with them.
        self.arrivals.retain(cycle.dlqs)
        self.reasons.retain(cycle.dlqs)
        self.last_timestamp = {k: v for k, v in self.last_timestamp.items() if k in cycle.dlqs}
        self.learned_source = {k: v for k, v in self.learned_source.items() if k in cycle.learn_source}
        self._read_upto = {tp: o for tp, o in self._read_upto.items() if tp in dlq_parts}

    def _sample(self, cycle: DlqCycle, view, dlq_parts, reader, time_left: float) -> None:
        new: dict = {}  # (topic, partition) -> (first unread offset, end)
        for tp in dlq_parts:
            end, start = view.end_offsets.get(tp), view.start_offsets.get(tp, 0)
            if end is None:
                continue
            upto = self._read_upto.get(tp)
            if upto is not None and end < upto:
                upto = None  # recreated or truncated: its offsets start over
            first = max(start, upto if upto is not None else 0)
            if end > first:
                new[tp] = (first, end)
            else:
                self._read_upto[tp] = end
        if not new or time_left <= 0.05:
            return
        # Without reasons only the newest record of each partition is needed (its timestamp).
        budget = self.reason_options.sample if self.reason_options.enabled else len(new)
        per_partition = max(1, budget // len(new))
        ranges = {}
        for tp, (first, end) in sorted(new.items(), key=lambda kv: kv[1][0] - kv[1][1]):
            if budget <= 0:
                break
            n = min(end - first, per_partition, budget)
            ranges[tp] = (end - n, end)
            budget -= n
        got = reader.read(ranges, time_left)
        for tp, (_, end) in ranges.items():
            recs = got.records.get(tp) or []
            if tp in got.complete:
                self._read_upto[tp] = end
            elif recs:
                self._read_upto[tp] = recs[-1].offset + 1
            self._count(tp[0], recs, cycle)
        for topic, p, message in got.errors:
            cycle.problems.append(("dlq_read", f"reading dead letters of {topic}[{p}]: {message}"))

    def _count(self, dlq: str, records, cycle: DlqCycle) -> None:
        opts = self.reason_options
        bad = 0
        first_problem = ""
        for rec in records:
            if rec.timestamp is not None:
                self.last_timestamp[dlq] = max(rec.timestamp, self.last_timestamp.get(dlq, 0.0))
            if dlq in cycle.learn_source:
                source = original_topic(rec.headers)
                if source and source.strip():
                    self.learned_source[dlq] = normalize_reason(source)  # a label: short and printable
            if not opts.enabled:
                continue
            reason, problems = reason_of(rec.headers, rec.value, opts.headers, opts.json_field, opts.max_payload_bytes)
            self.reasons.add(dlq, reason)
            cycle.sampled += 1
            if problems:
                bad += 1
                first_problem = first_problem or f"{dlq}[{rec.partition}] offset {rec.offset}: {'; '.join(problems)}"
        if bad:
            more = f" (and {bad - 1} more dead letter(s))" if bad > 1 else ""
            cycle.problems.append(("dlq_reason", f"unreadable failure reason in {first_problem}{more}"))
