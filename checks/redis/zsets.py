"""Sorted sets whose scores are times: due-time (delayed) queues and dead-letter sets.

Only the head, a count below "now" and the newest few entries are read, never the set.
"""

from __future__ import annotations

import math

from mqwatch.checks.redis.client import as_float, is_denied
from mqwatch.checks.redis.model import DeadLetterStat, DelayedStat

# Scores at or above this are milliseconds: as seconds they would be past the year 5000.
_MS_THRESHOLD = 1e11
# BullMQ bakes a 12-bit job counter under the millisecond due time: score = due_ms * 4096 + n.
BULLMQ_FACTOR = 0x1000


class ScoreClock:
    """How a set's scores map to Unix seconds: seconds, milliseconds, auto, or BullMQ's encoding."""

    def __init__(self, unit: str):
        self.unit = unit

    def thresholds(self, now: float) -> list:
        """Score bounds meaning "due by now", one per candidate unit."""
        if self.unit == "seconds":
            return [now]
        if self.unit == "milliseconds":
            return [now * 1000]
        if self.unit == "bullmq":
            return [(math.floor(now * 1000) + 1) * BULLMQ_FACTOR - 1]
        return [now, now * 1000]

    def resolve(self, head_score: float | None) -> int:
        """Index into thresholds() for this set (auto picks by the head's magnitude)."""
        if self.unit == "auto" and head_score is not None and abs(head_score) >= _MS_THRESHOLD:
            return 1
        return 0

    def to_seconds(self, score: float, index: int) -> float:
        if self.unit == "bullmq":
            return math.floor(score / BULLMQ_FACTOR) / 1000.0
        if self.unit == "milliseconds" or (self.unit == "auto" and index == 1):
            return score / 1000.0
        return score


def read_delayed(rounds, key, clock: ScoreClock, now: float, store) -> None:
    read_delayed_many(rounds, [key], clock, now, lambda _key, stat: store(stat))


def read_delayed_many(rounds, keys, clock: ScoreClock, now: float, store, on_error=None) -> None:
    """ZCARD and the head of each set; ZCOUNT up to now only for sets whose head is overdue
    (most are not). store(key, DelayedStat) per set; on_error(key, reply) for an error reply
    (a key that changed type), else it raises into the round's error report."""
    def failed(key, reply):
        if is_denied(reply):
            return  # Rounds reports NOPERM
        if on_error is None:
            raise ValueError(str(reply))
        on_error(key, reply)

    def on_heads(replies):
        overdue = []
        for i, key in enumerate(keys):
            card, head = replies[2 * i], replies[2 * i + 1]
            if isinstance(card, Exception) or isinstance(head, Exception):
                failed(key, card if isinstance(card, Exception) else head)
                continue
            if not head:
                store(key, DelayedStat(int(card), 0, 0.0))
                continue
            score = float(head[0][1] if isinstance(head[0], list) else head[1])  # RESP3 nests the pair
            index = clock.resolve(score)
            due = clock.to_seconds(score, index)
            if due > now:
                store(key, DelayedStat(int(card), 0, 0.0))
            else:
                overdue.append((key, int(card), due, repr(float(clock.thresholds(now)[index]))))
        if overdue:
            rounds.add_many(lambda counts: on_counts(overdue, counts),
                            [("zcount", key, "-inf", upto) for key, _, _, upto in overdue])

    def on_counts(overdue, counts):
        for (key, card, due, _), n in zip(overdue, counts):
            if isinstance(n, Exception):
                failed(key, n)
            else:
                store(key, DelayedStat(card, int(n), max(0.0, now - due)))

    calls = []
    for key in keys:
        calls += [("zcard", key), ("ZRANGE", key, 0, 0, "WITHSCORES")]
    rounds.add_many(on_heads, calls)


# Most members sharing the newest score that are remembered to tell new ones from seen ones.
BOUNDARY_MAX = 10000


def read_dead_set(rounds, key, since, sample: int, store, clock: ScoreClock | None = None, source: str = "") -> None:
    """A dead-letter ZSET: size, arrivals since the last read, and the newest arrivals.

    Arrivals are counted by membership, not by score alone: several entries can share one
    score (RQ scores failures in whole seconds, BullMQ in milliseconds), so the cursor is the
    newest score seen AND the members that had it; an entry at that score that is not among
    them arrived since. store(stat, new_members) gets the stat and the (member, score) pairs
    that arrived, newest first, at most `sample`; the caller turns members into sources and reasons.
    """
    top_seen, boundary = since if isinstance(since, tuple) else (None, frozenset())
    replies: dict = {}
    wanted = 4 if top_seen is None else 5

    def keep(name):
        def cb(result):
            replies[name] = result
            if len(replies) == wanted:
                _finish_dead(rounds, key, replies, top_seen, boundary, sample, clock, source, store)
        return cb

    lower = "-inf" if top_seen is None else repr(float(top_seen))
    rounds.add(keep("card"), "zcard", key)
    rounds.add(keep("above"), "zcount", key, "-inf" if top_seen is None else f"({float(top_seen)!r}", "+inf")
    rounds.add(keep("newest"), "zrevrangebyscore", key, "+inf", lower, 0, max(sample, 1) + len(boundary), True)
    rounds.add(keep("top"), "zrevrange", key, 0, 0, True)
    if top_seen is not None:
        rounds.add(keep("at_top"), "zrangebyscore", key, lower, lower, 0, BOUNDARY_MAX)


def _finish_dead(rounds, key, replies, top_seen, boundary, sample, clock, source, store) -> None:
    for v in replies.values():
        if isinstance(v, Exception):
            raise ValueError(str(v))
    top = replies["top"][0][1] if replies["top"] else None
    newest = None
    if top is not None and clock is not None:
        newest = clock.to_seconds(top, clock.resolve(top))
    at_top = set(replies.get("at_top") or ())
    arrivals = int(replies["above"]) + len(at_top - boundary)
    new_members = [(m, as_float(s)) for m, s in replies["newest"] if not (s == top_seen and m in boundary)]
    stat = DeadLetterStat(source=source, size=int(replies["card"]), newest_timestamp=newest,
                          arrivals=arrivals, cursor=(top_seen, boundary) if top_seen is not None else None)
    if top is not None and top == top_seen:
        stat.cursor = (top, frozenset(at_top))
    elif top is not None:
        def on_boundary(members):
            if not isinstance(members, Exception):
                stat.cursor = (top, frozenset(members))
        rounds.add(on_boundary, "zrangebyscore", key, repr(float(top)), repr(float(top)), 0, BOUNDARY_MAX)
    store(stat, new_members[:sample])
