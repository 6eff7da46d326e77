"""BullMQ's key layout (taskforcesh/bullmq src/classes/queue-keys.ts, src/commands/*.lua):

`<prefix>:<queue>:` + `wait`, `paused`, `active` (LISTs, LPUSHed: the oldest job is at index -1),
`prioritized` (ZSET), `delayed` (ZSET scored by due time in ms * 0x1000 + a 12-bit counter,
includes/getDelayedScore.lua), `failed` (ZSET scored by finishedOn, ms), `meta` (HASH) and `id`
(the job counter). A job is the HASH `<prefix>:<queue>:<id>` with `timestamp` (ms, creation),
`failedReason` and `finishedOn`.
"""

from __future__ import annotations

from mqwatch.checks.redis.client import as_float, is_error, label
from mqwatch.checks.redis.model import PendingStat, QueueStat
from mqwatch.checks.redis.zsets import ScoreClock, read_dead_set, read_delayed

NAME = "bullmq"
DELAYED = ScoreClock("bullmq")
FINISHED = ScoreClock("milliseconds")
_MARKERS = (b":meta", b":id")


def discovery_patterns(prefix: str) -> list[str]:
    return [f"{prefix}:*:meta", f"{prefix}:*:id"]


def queues_from_keys(prefix: str, keys) -> list[bytes]:
    start = prefix.encode() + b":"
    found = set()
    for k in keys:
        if k.startswith(start):
            for marker in _MARKERS:
                if k.endswith(marker) and len(k) > len(start) + len(marker):
                    found.add(k[len(start): -len(marker)])
    return sorted(found)


def owns(prefix: str, queues) -> callable:
    starts = tuple(prefix.encode() + b":" + q + b":" for q in queues)
    return lambda key: key.startswith(starts) if starts else False


def dlq_name(prefix: str, q: bytes) -> str:
    return label(prefix.encode() + b":" + q + b":failed")


# Prioritized jobs are scored priority * 2**32 + a queue-wide insertion counter
# (includes/getPriorityScore.lua): the oldest job of a priority is the head of its band.
PRIORITY_BAND = 0x100000000
# Bands walked per cycle to find the oldest prioritized job (one dependent round each);
# applications use a handful of priorities.
MAX_PRIORITY_BANDS = 16


def read(rounds, prefix: str, queues, cursors, sample: int, now: float, view) -> None:
    for q in queues:
        base = prefix.encode() + b":" + q + b":"
        name = label(q)
        stat = QueueStat(0, 0.0)
        view.queues[(NAME, name)] = stat

        def count(state, method, suffix, name=name, stat=stat, base=base, ready=False):
            def cb(result):
                if is_error(result):
                    view.error("key_changed", f"bullmq queue {name!r} {state}: {result}")
                    return
                key = (NAME, name, state)
                view.jobs[key] = view.jobs.get(key, 0) + int(result)
                if ready:
                    stat.messages += int(result)
            rounds.add(cb, method, base + suffix)

        # Ready backlog: wait, prioritized and the `paused` list of BullMQ < 5 (5+ pauses in place).
        count("waiting", "llen", b"wait", ready=True)
        count("waiting", "llen", b"paused", ready=True)
        count("prioritized", "zcard", b"prioritized", ready=True)
        count("waiting-children", "zcard", b"waiting-children")
        count("active", "llen", b"active")

        def on_paused(flag, name=name):
            if not is_error(flag):
                view.paused[(NAME, name)] = flag == b"1"
        rounds.add(on_paused, "hget", base + b"meta", "paused")

        oldest = _Oldest(rounds, base, stat, now)
        rounds.add(oldest.list_tail, "lindex", base + b"wait", -1)
        rounds.add(oldest.list_tail, "lindex", base + b"paused", -1)
        oldest.band(-1)

        def on_active(result, name=name):
            if not is_error(result):
                view.pending[(NAME, name, None)] = PendingStat(int(result))
        rounds.add(on_active, "llen", base + b"active")

        def on_delayed(d, name=name):
            view.delayed[(NAME, name)] = d
            view.jobs[(NAME, name, "delayed")] = d.messages
        read_delayed(rounds, base + b"delayed", DELAYED, now, on_delayed)
        _read_attempts(rounds, base, name, view)

        dlq = dlq_name(prefix, q)

        def on_failed(stat, new_members, dlq=dlq, base=base, name=name):
            view.dlqs[(NAME, dlq)] = stat
            view.jobs[(NAME, name, "failed")] = stat.size
            for job_id, _ in new_members[:sample]:
                entry = [None, None]
                stat.sampled.append(entry)

                def on_reason(reason, entry=entry):
                    if not is_error(reason) and reason is not None:
                        entry[1] = label(reason)
                rounds.add(on_reason, "hget", base + job_id, "failedReason")

        read_dead_set(rounds, base + b"failed", cursors.get((NAME, dlq)), sample, on_failed, clock=FINISHED,
                      source=name)


# A job that failed and will be retried waits in `delayed` (its backoff) with its attemptsMade.
# The most retried jobs back off longest, so the latest-due ones are read.
ATTEMPTS_READ_MAX = 100


def _read_attempts(rounds, base: bytes, name: str, view) -> None:
    """The highest attemptsMade among the queue's delayed jobs: executions of its most retried job
    (bullmq src/classes/job.ts stores it as `atm`)."""
    view.max_deliveries[(NAME, name)] = 0

    def on_ids(ids):
        if is_error(ids):
            return
        for job_id in ids:
            # BullMQ 5+ keeps attemptsMade in the job hash as `atm`; older versions as `attemptsMade`.
            rounds.add(on_attempts, "hmget", base + job_id, "atm", "attemptsMade")

    def on_attempts(values):
        if is_error(values):
            return
        for value in values:
            try:
                n = int(value)
            except (TypeError, ValueError):
                continue  # a plain delayed job (no attempt yet), or one removed meanwhile
            key = (NAME, name)
            view.max_deliveries[key] = max(view.max_deliveries[key], n)

    rounds.add(on_ids, "zrevrange", base + b"delayed", 0, ATTEMPTS_READ_MAX - 1)


class _Oldest:
    """The queue's latency: age of the oldest job among the tails of wait/paused and the
    head of every priority band of `prioritized` (each band's head is its oldest job)."""

    def __init__(self, rounds, base: bytes, stat: QueueStat, now: float):
        self.rounds, self.base, self.stat, self.now = rounds, base, stat, now
        self.bands = 0

    def job(self, job_id) -> None:
        def on_created(ts):
            ms = as_float(ts) if not is_error(ts) else None
            if ms is not None:
                self.stat.latency = max(self.stat.latency or 0.0, self.now - ms / 1000.0)
        self.rounds.add(on_created, "hget", self.base + job_id, "timestamp")

    def list_tail(self, job_id) -> None:
        if job_id is not None and not is_error(job_id):
            self.job(job_id)

    def band(self, previous: int) -> None:
        """Ask for the head of the first band above `previous` (-1: the lowest band)."""
        def on_head(result):
            if is_error(result) or not result:
                return
            job_id, score = result[0]
            self.job(job_id)
            self.bands += 1
            if self.bands < MAX_PRIORITY_BANDS:
                self.band(int(score) // PRIORITY_BAND)
        low = "-inf" if previous < 0 else (previous + 1) * PRIORITY_BAND
        self.rounds.add(on_head, "zrangebyscore", self.base + b"prioritized", low, "+inf", 0, 1, True)
