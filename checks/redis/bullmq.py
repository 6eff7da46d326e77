"""BullMQ's key layout (taskforcesh/bullmq src/classes/queue-keys.ts, src/commands/*.lua):

`<prefix>:<queue>:` + `wait`, `paused`, `active` (LISTs, LPUSHed: the oldest job is at index -1),
`prioritized` (ZSET), `delayed` (ZSET scored by due time in ms * 0x1000 + a 12-bit counter,
includes/getDelayedScore.lua), `failed` (ZSET scored by finishedOn, ms), `meta` (HASH) and `id`
(the job counter). A job is the HASH `<prefix>:<queue>:<id>` with `timestamp` (ms, creation),
`failedReason` and `finishedOn`.
"""

from __future__ import annotations

from checks.redis.client import as_float, is_error, label
from checks.redis.model import PendingStat, QueueStat, add_length
from checks.redis.zsets import ScoreClock, read_dead_set, read_delayed

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


def read(rounds, prefix: str, queues, cursors, sample: int, now: float, view) -> None:
    for q in queues:
        base = prefix.encode() + b":" + q + b":"
        name = label(q)
        stat = QueueStat(0, 0.0, NAME)
        view.queues[name] = stat

        add_messages = add_length(stat, view, f"bullmq queue {name!r}")

        rounds.add(add_messages, "llen", base + b"wait")
        rounds.add(add_messages, "llen", base + b"paused")
        rounds.add(add_messages, "zcard", base + b"prioritized")

        def on_oldest(job_id, stat=stat, base=base):
            if job_id is None or is_error(job_id):
                return

            def on_created(ts):
                ms = as_float(ts) if not is_error(ts) else None
                if ms is not None:
                    stat.latency = max(0.0, now - ms / 1000.0)
            rounds.add(on_created, "hget", base + job_id, "timestamp")
        rounds.add(on_oldest, "lindex", base + b"wait", -1)

        def on_active(result, name=name):
            if not is_error(result):
                view.pending[(name, None)] = PendingStat(int(result))
        rounds.add(on_active, "llen", base + b"active")

        read_delayed(rounds, base + b"delayed", DELAYED, now, lambda s, n=name: view.delayed.__setitem__(n, s))

        dlq = dlq_name(prefix, q)

        def on_failed(stat, new_members, dlq=dlq, base=base):
            view.dlqs[dlq] = stat
            for job_id, _ in new_members[:sample]:
                entry = [None, None]
                stat.sampled.append(entry)

                def on_reason(reason, entry=entry):
                    if not is_error(reason) and reason is not None:
                        entry[1] = label(reason)
                rounds.add(on_reason, "hget", base + job_id, "failedReason")

        read_dead_set(rounds, base + b"failed", cursors.get(dlq), sample, on_failed, clock=FINISHED, source=name)
