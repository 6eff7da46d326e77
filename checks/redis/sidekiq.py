"""Sidekiq's key layout (sidekiq/sidekiq lib/sidekiq/api.rb, client.rb, job_retry.rb):

- `queues`: SET of queue names; `queue:<name>`: LIST, LPUSHed, so the oldest job is at index -1.
  Each job is JSON; `enqueued_at` is a Float of seconds (Sidekiq < 8) or Integer milliseconds (8+).
- `schedule`, `retry`: ZSETs scored by the time (Float seconds) the job is due.
- `dead`: ZSET scored by time of death; each job records its `queue` and `error_class`.
"""

from __future__ import annotations

import json

from checks.redis.client import is_error, label
from checks.redis.model import DEFAULT_MAX_PAYLOAD, QueueStat, add_length, oversized
from checks.redis.zsets import ScoreClock, read_dead_set, read_delayed

NAME = "sidekiq"
DEAD = "dead"
SECONDS = ScoreClock("seconds")


def discover(rounds, found) -> None:
    """found(queue names) when the `queues` set exists (nothing when Sidekiq is not used here)."""
    rounds.add(lambda names: found(sorted(names) if not is_error(names) else []), "smembers", "queues")


def owned_keys(queues) -> set:
    return {b"queues", b"schedule", b"retry", b"dead"} | {b"queue:" + q for q in queues}


def read(rounds, queues, cursors, sample: int, now: float, view, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
    for q in queues:
        name = label(q)
        stat = QueueStat(0, 0.0, NAME)
        view.queues[name] = stat

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
        read_delayed(rounds, zset, SECONDS, now, lambda stat, z=zset: view.delayed.__setitem__(z, stat))

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
        view.dlqs[DEAD] = stat

    read_dead_set(rounds, DEAD, cursors.get(DEAD), sample, on_dead, clock=SECONDS, source="")


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
