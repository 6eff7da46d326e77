"""RQ's key layout (rq/rq rq/queue.py, rq/registry.py, rq/job.py, rq/results.py):

- `rq:queues`: SET of queue keys `rq:queue:<name>`; each a LIST of job ids, RPUSHed, so the
  oldest is at index 0. `rq:job:<id>` is a HASH with `enqueued_at` ('%Y-%m-%dT%H:%M:%S.%fZ', UTC).
- Registries are ZSETs: `rq:wip:<name>` (started), `rq:scheduled:<name>` (scored by the due time,
  seconds), `rq:failed:<name>` (scored by EXPIRY: failure time + failure_ttl, so not a failure time).
- `rq:deferred:<name>`: ZSET of jobs waiting for the jobs they depend on. `rq:workers`: SET of
  worker keys `rq:worker:<name>`, a HASH each that expires when the worker stops heartbeating
  (Worker.all() skips keys that are gone).
- A failed job's `exc_info` in its hash is the zlib-compressed traceback text (plain text in old
  RQ); RQ 1.12+ also writes results to the stream `rq:results:<id>`, whose `exc_string` is
  base64 of the zlib-compressed traceback. The exception class ends the traceback.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import zlib

from mqwatch.checks.redis.client import is_error, label
from mqwatch.checks.redis.model import DEFAULT_MAX_PAYLOAD, PendingStat, QueueStat, oversized
from mqwatch.checks.redis.zsets import ScoreClock, read_dead_set, read_delayed

NAME = "rq"
QUEUE_PREFIX = b"rq:queue:"
SECONDS = ScoreClock("seconds")
_REGISTRIES = (b"rq:wip:", b"rq:scheduled:", b"rq:failed:", b"rq:finished:", b"rq:deferred:", b"rq:canceled:",
               b"rq:ready:")
WORKERS = b"rq:workers"


def discover(rounds, found) -> None:
    def on_members(keys):
        found([] if is_error(keys) else sorted(k[len(QUEUE_PREFIX):] for k in keys if k.startswith(QUEUE_PREFIX)))
    rounds.add(on_members, "smembers", "rq:queues")


def owned_keys(queues) -> set:
    keys = {b"rq:queues", WORKERS}
    for q in queues:
        keys.add(QUEUE_PREFIX + q)
        keys.update(prefix + q for prefix in _REGISTRIES)
    return keys


def failed_key(q: bytes) -> str:
    return label(b"rq:failed:" + q)


def read(rounds, queues, cursors, sample: int, now: float, view, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
    for q in queues:
        name = label(q)
        stat = QueueStat(0, 0.0)
        view.queues[(NAME, name)] = stat

        def on_queued(result, name=name, stat=stat):
            if is_error(result):
                view.error("key_changed", f"rq queue {name!r}: {result}")
            else:
                stat.messages = view.jobs[(NAME, name, "queued")] = int(result)

        def on_oldest(job_id, stat=stat, name=name):
            if job_id is None or is_error(job_id):
                return

            def on_enqueued(value):
                at = parse_time(value)
                if at is None:
                    view.error("bad_payload", f"rq queue {name!r}: job {label(job_id)!r} has no readable enqueued_at")
                else:
                    stat.latency = max(0.0, now - at)
            rounds.add(on_enqueued, "hget", b"rq:job:" + job_id, "enqueued_at")

        rounds.add(on_queued, "llen", QUEUE_PREFIX + q)
        rounds.add(on_oldest, "lindex", QUEUE_PREFIX + q, 0)

        def on_wip(result, name=name):
            if not is_error(result):
                view.pending[(NAME, name, None)] = PendingStat(int(result))
                view.jobs[(NAME, name, "started")] = int(result)
        rounds.add(on_wip, "zcard", b"rq:wip:" + q)

        def on_deferred(result, name=name):
            if not is_error(result):
                view.jobs[(NAME, name, "deferred")] = int(result)
        rounds.add(on_deferred, "zcard", b"rq:deferred:" + q)

        def on_scheduled(d, name=name):
            view.delayed[(NAME, name)] = d
            view.jobs[(NAME, name, "scheduled")] = d.messages

        def on_scheduled_type(result, q=q, on_scheduled=on_scheduled):
            if result == b"zset":
                read_delayed(rounds, b"rq:scheduled:" + q, SECONDS, now, on_scheduled)
        rounds.add(on_scheduled_type, "type", b"rq:scheduled:" + q)

        dlq = failed_key(q)

        def on_failed(stat, new_members, dlq=dlq, name=name):
            stat.source = name
            view.dlqs[(NAME, dlq)] = stat
            view.jobs[(NAME, name, "failed")] = stat.size
            newest_id = new_members[0][0] if new_members else None
            for job_id, _ in new_members[:sample]:
                entry = [None, None]
                stat.sampled.append(entry)  # filled in by the reads below, before the check evaluates

                def on_job(fields, entry=entry, job_id=job_id):
                    if is_error(fields):
                        return
                    exc_info, ended_at = fields
                    entry[1] = exception_class(exc_info, max_payload)
                    if job_id == newest_id:
                        stat.newest_timestamp = parse_time(ended_at)
                    if entry[1] is None:
                        def on_result(items, entry=entry):
                            if not is_error(items) and items:
                                entry[1] = exception_class(result_exc_string(items[0][1], max_payload), max_payload)
                        rounds.add(on_result, "xrevrange", b"rq:results:" + job_id, "+", "-", 1)
                rounds.add(on_job, "hmget", b"rq:job:" + job_id, "exc_info", "ended_at")
        # The failed registry's scores are expiry times, int(now) + failure_ttl: with one
        # failure_ttl they rise with failure time, and failures of one second share a score
        # (read_dead_set tells those apart by membership).
        read_dead_set(rounds, b"rq:failed:" + q, cursors.get((NAME, dlq)), sample, on_failed, clock=None,
                      source=name)
    _read_workers(rounds, view)


def _read_workers(rounds, view) -> None:
    """Workers registered whose key still exists, as Worker.all() counts them."""
    def on_members(keys):
        if is_error(keys):
            return
        view.workers[NAME] = 0

        def on_exists(n):
            if not is_error(n):
                view.workers[NAME] += int(n)
        for k in keys:
            rounds.add(on_exists, "exists", k)
    rounds.add(on_members, "smembers", WORKERS)


def parse_time(value) -> float | None:
    if value is None or is_error(value):
        return None
    text = label(value)
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            continue
    return None


def exc_text(raw, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> str | None:
    """The traceback text; None when it is larger than max_bytes, compressed or not."""
    if raw is None or oversized(raw, max_bytes):
        return None
    if isinstance(raw, str):
        return raw
    try:
        return _inflate(raw, max_bytes)
    except zlib.error:
        return label(raw)  # RQ before 0.13 stored it uncompressed


def _inflate(raw: bytes, max_bytes: int) -> str | None:
    """zlib-decompressed text, stopping at max_bytes of output: a few KB can inflate to GB."""
    d = zlib.decompressobj()
    out = d.decompress(raw, max_bytes + 1)
    if len(out) > max_bytes or d.unconsumed_tail:
        return None
    return out.decode("utf-8", errors="replace")


def result_exc_string(fields: dict, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> str | None:
    raw = fields.get(b"exc_string")
    if raw is None or oversized(raw, max_bytes * 2):  # base64 of compressed text
        return None
    try:
        return _inflate(base64.b64decode(raw), max_bytes)
    except (binascii.Error, zlib.error, ValueError):
        return None


def exception_class(raw_or_text, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> str | None:
    """`ZeroDivisionError` from a traceback ending in `ZeroDivisionError: division by zero`."""
    text = exc_text(raw_or_text, max_bytes) if isinstance(raw_or_text, (bytes, bytearray)) else raw_or_text
    if not text:
        return None
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return None
    last = lines[-1]
    head = last.split(":", 1)[0].strip()
    return head if head and " " not in head else last
