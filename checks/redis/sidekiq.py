"""Sidekiq's key layout (sidekiq/sidekiq lib/sidekiq/api.rb, client.rb, job_retry.rb):

- `queues`: SET of queue names; `queue:<name>`: LIST, LPUSHed, so the oldest job is at index -1.
  Each job is JSON; `enqueued_at` is a Float of seconds (Sidekiq < 8) or Integer milliseconds (8+).
- `schedule`, `retry`: ZSETs scored by the time (Float seconds) the job is due.
- `dead`: ZSET scored by time of death; each job records its `queue` and `error_class`.
- `processes`: SET of process identities; each a HASH with `info` (JSON, gone when the process
  missed its heartbeats: Sidekiq::ProcessSet prunes those) and `busy`; the jobs running now are in
  the HASH `<identity>:workers` (Sidekiq 6) or `<identity>:work` (7+), thread id -> JSON with
  `queue`, `payload` and `run_at` (seconds): what Sidekiq::WorkSet lists.
"""

from __future__ import annotations

import json

from mqwatch.checks.redis.client import as_float, is_error, label
from mqwatch.checks.redis.model import DEFAULT_MAX_PAYLOAD, PendingStat, QueueStat, add_length, oversized
from mqwatch.checks.redis.zsets import ScoreClock, read_dead_set, read_delayed

NAME = "sidekiq"
DEAD = "dead"
SECONDS = ScoreClock("seconds")
# Dead jobs read per cycle to split the dead set's depth by queue: Sidekiq's own cap
# (dead_max_jobs) is 10,000. Jobs beyond it count under `unknown`.
DEAD_READ_MAX = 10000
UNKNOWN = "unknown"


def discover(rounds, found) -> None:
    """found(queue names) when the `queues` set exists (nothing when Sidekiq is not used here)."""
    rounds.add(lambda names: found(sorted(names) if not is_error(names) else []), "smembers", "queues")


def owned_keys(queues) -> set:
    return {b"queues", b"schedule", b"retry", b"dead", b"processes"} | {b"queue:" + q for q in queues}


def read(rounds, queues, cursors, sample: int, now: float, view, sources: dict,
         max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
    """`sources` is the dead set's split across cycles: each job's queue by member hash (a job
    is parsed once), and the last split, reused while the set is unchanged (not even read)."""
    for q in queues:
        name = label(q)
        stat = QueueStat(0, 0.0)
        view.queues[(NAME, name)] = stat
        view.pending[(NAME, name, None)] = PendingStat(0, 0.0)  # busy jobs, counted from the processes

        on_len = add_length(stat, view, f"sidekiq queue {name!r}")

        def on_oldest(result, stat=stat, name=name):
            if result is None or is_error(result):
                return
            stat.latency = job_latency(result, now)
            if stat.latency is None:
                view.error("bad_payload", f"sidekiq queue {name!r}: oldest job is not Sidekiq job JSON with enqueued_at")

        rounds.add(on_len, "llen", b"queue:" + q)
        rounds.add(on_oldest, "lindex", b"queue:" + q, -1)

    for zset in ("schedule", "retry"):
        read_delayed(rounds, zset, SECONDS, now, lambda stat, z=zset: view.delayed.__setitem__((NAME, z), stat))
    for q in queues:
        view.max_deliveries[(NAME, label(q))] = 0
    rounds.add(lambda members: _retried(members, view, max_payload), "zrevrange", "retry", 0, RETRY_READ_MAX - 1)

    def on_dead(stat, new_members):
        bad = 0
        for member, _ in new_members[:sample]:
            job = _job(member, max_payload)
            if job is None:
                bad += 1
                stat.sampled.append((None, None))
            else:
                stat.sampled.append((_str(job.get("queue")), _str(job.get("error_class"))))
        if bad:
            view.error("bad_payload", f"sidekiq dead set: {bad} of the newest dead jobs are not valid job JSON")
        view.dlqs[(NAME, DEAD)] = stat
        last = sources.get("split")
        if last is not None and stat.arrivals == 0 and last[0] == stat.size:
            stat.by_source = last[1]  # nothing arrived and nothing left: the same jobs as last cycle
            return
        rounds.add(lambda members: _split_dead(members, stat, sources, view, max_payload), "zrange", DEAD, 0,
                   DEAD_READ_MAX - 1, False, True)

    read_dead_set(rounds, DEAD, cursors.get((NAME, DEAD)), sample, on_dead, clock=SECONDS, source="")
    _read_processes(rounds, now, view)


# The retry set is scored by the next attempt, which backs off with each retry: the most
# retried jobs are due last, so the newest entries are read.
RETRY_READ_MAX = 1000


def _retried(members, view, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
    """Executions so far of each queue's most retried job: retry_count + 1 (job_retry.rb sets
    retry_count 0 on the first failure). A job failing again and again is a poison message."""
    if is_error(members):
        return
    for member in members:
        job = _job(member, max_payload)  # an oversized job is not parsed (None)
        count = job.get("retry_count") if job else None
        if isinstance(count, bool) or not isinstance(count, int):
            continue
        key = (NAME, _str(job.get("queue")) or UNKNOWN)
        view.max_deliveries[key] = max(view.max_deliveries.get(key, 0), count + 1)


def _split_dead(members, stat, cache: dict, view, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
    """The dead set's depth and newest death per job queue (the set itself mixes queues)."""
    if is_error(members):
        view.error("key_changed", f"sidekiq dead set: {members}")
        return
    by_source: dict = {}
    newest: dict = {}
    seen: dict = {}
    known = cache.get("members", {})
    for member, score in members:
        h = hash(member)
        src = known.get(h)
        if src is None:
            job = _job(member, max_payload)
            src = (_str(job.get("queue")) if job else None) or UNKNOWN
        seen[h] = src
        by_source[src] = by_source.get(src, 0) + 1
        newest[src] = max(newest.get(src, score), score)
    beyond = stat.size - len(members)
    if beyond > 0:
        by_source[UNKNOWN] = by_source.get(UNKNOWN, 0) + beyond
    stat.by_source = {src: (n, newest.get(src)) for src, n in by_source.items()}
    cache["members"], cache["split"] = seen, (stat.size, stat.by_source)


def _read_processes(rounds, now: float, view) -> None:
    """Live processes (those whose heartbeat `info` is still there) and the jobs they run, by queue."""
    def on_members(identities):
        if is_error(identities):
            return
        view.workers[NAME] = 0
        for ident in sorted(identities):
            def on_info(fields, ident=ident):
                if is_error(fields) or fields[0] is None:
                    return  # missed its heartbeats: dead, as Sidekiq::ProcessSet#cleanup decides
                view.workers[NAME] += 1
            rounds.add(on_info, "hmget", ident, "info", "busy")
            for suffix in (b":workers", b":work"):
                rounds.add(lambda work: _add_busy(work, now, view), "hgetall", ident + suffix)

    rounds.add(on_members, "smembers", "processes")


def _add_busy(work, now: float, view) -> None:
    if is_error(work):
        return
    for raw in work.values():
        job = _job(raw)
        queue = _str(job.get("queue")) if job else None
        if queue is None:
            view.error("bad_payload", "sidekiq: a running job's record names no queue")
            continue
        stat = view.pending.setdefault((NAME, queue, None), PendingStat(0, 0.0))
        stat.messages += 1
        run_at = as_float(job.get("run_at"))
        if run_at is not None:
            run_at = run_at if run_at < 1e11 else run_at / 1000.0  # Sidekiq 7 may write milliseconds
            stat.oldest_seconds = max(stat.oldest_seconds or 0.0, now - run_at)


def _job(raw, max_bytes: int = DEFAULT_MAX_PAYLOAD):
    if oversized(raw, max_bytes):
        return None
    try:
        job = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return job if isinstance(job, dict) else None


def _str(v):
    return None if v is None else str(v)


def job_latency(raw, now: float) -> float | None:
    """Seconds since the job was enqueued, as Sidekiq::Queue#latency computes it."""
    job = _job(raw)
    if job is None:
        return None
    at = job.get("enqueued_at", job.get("created_at"))
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        return None
    at = at if isinstance(at, float) else at / 1000.0
    return max(0.0, now - at)
