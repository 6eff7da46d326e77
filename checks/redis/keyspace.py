"""Keys matched by the `keys` and `dlq_keys` patterns: each key's type (from SCAN TYPE) decides its meaning.

LIST -> queue (or in-flight list of a reliable queue), ZSET -> due-time delayed queue,
STREAM -> stream with consumer groups; any of them matched by `dlq_keys` -> a DLQ.
"""

from __future__ import annotations

import json

from mqwatch.checks.redis.client import is_denied, is_error, is_missing_key, label
from mqwatch.checks.redis.globs import to_regex
from mqwatch.checks.redis.model import DEFAULT_MAX_PAYLOAD, PLAIN, DeadLetterStat, PendingStat, QueueStat, oversized
from mqwatch.checks.redis.streams import after, parse_id, read_stream
from mqwatch.checks.redis.zsets import ScoreClock, read_dead_set, read_delayed_many

# Fields a dead letter written by hand commonly names its failure with (first one present wins).
REASON_FIELDS = ("error_class", "exception", "exc_type", "error_type", "failedReason", "reason", "error")


class DlqPatterns:
    """`dlq_keys` globs; the part a single `*` matched names the source queue (`orders:dead` -> `orders`)."""

    def __init__(self, patterns):
        self._compiled = [(to_regex(p, capture_stars=True), p.count("*") == 1) for p in patterns]

    def source(self, key: bytes) -> str | None:
        """The source queue if `key` is a DLQ, else None."""
        for regex, one_star in self._compiled:
            m = regex.fullmatch(key)
            if m:
                return label(m.group(1)) if one_star else label(key)
        return None


def reason_of(payload, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> str | None:
    """The failure reason recorded in a dead letter's JSON payload, or None (also when the
    payload is larger than max_bytes: it is not parsed)."""
    if oversized(payload, max_bytes):
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    for f in REASON_FIELDS:
        v = doc.get(f)
        if isinstance(v, dict):
            v = v.get("type") or v.get("class") or v.get("name")
        if v not in (None, ""):
            return str(v)
    return None


def read_keys(rounds, keys, options, dlq_patterns: DlqPatterns, cursors: dict, now: float, view) -> None:
    clock = ScoreClock(options.delayed_score)
    suffix = options.processing_suffix.encode()
    lists, zsets = [], []

    for key, kind in keys:  # kind is what TYPE answered
        name = label(key)
        source = dlq_patterns.source(key)
        if source is not None:
            _read_dlq(rounds, key, name, kind, source, cursors.get((PLAIN, name)), options, clock, now, view)
        elif kind == "list":
            lists.append(key)
        elif kind == "zset":
            zsets.append(key)
        elif kind == "stream":
            read_stream(rounds, key, now, options.stream_lag_max_scan, view, pending_scan=options.pending_scan)

    def on_lengths(replies):
        for key, n in zip(lists, replies):
            if is_denied(n):
                continue  # Rounds reports NOPERM
            if is_error(n):
                view.error("key_changed", f"LLEN {label(key)!r}: {n}")
            elif key.endswith(suffix) and len(key) > len(suffix):
                view.pending[(PLAIN, label(key[: -len(suffix)]), None)] = PendingStat(int(n))
            else:
                view.queues[(PLAIN, label(key))] = QueueStat(int(n))
    rounds.add_many(on_lengths, [("llen", k) for k in lists])

    def on_zset_error(key, reply):
        view.error("key_changed", f"sorted set {label(key)!r}: {reply}")
    read_delayed_many(rounds, zsets, clock, now, lambda key, stat: view.delayed.__setitem__((PLAIN, label(key)), stat),
                      on_zset_error)


def _read_dlq(rounds, key, name, kind, source, cursor, options, clock, now, view) -> None:
    sample = options.dlq_sample
    if kind == "zset":
        def store(stat, new_members):
            stat.source = source
            stat.sampled = [(None, reason_of(m, options.max_payload_bytes)) for m, _ in new_members[:sample]]
            view.dlqs[(PLAIN, name)] = stat
        read_dead_set(rounds, key, cursor, sample, store, clock=clock, source=source)
    elif kind == "list":
        def on_len(result):
            if is_error(result):
                view.error("key_changed", f"LLEN {name!r}: {result}")
                return
            stat = DeadLetterStat(source=source, size=int(result), cursor=int(result))
            view.dlqs[(PLAIN, name)] = stat
            grown = int(result) - (cursor if isinstance(cursor, int) else 0)
            if grown > 0 and sample:
                # Dead letters are LPUSHed by convention, so the newest are at the head.
                def on_head(items):
                    if not is_error(items):
                        stat.sampled = [(None, reason_of(i, options.max_payload_bytes)) for i in items]
                rounds.add(on_head, "lrange", key, 0, min(grown, sample) - 1)
        rounds.add(on_len, "llen", key)
    elif kind == "stream":
        def on_info(result):
            if is_missing_key(result):
                return
            if is_error(result):
                view.error("key_changed", f"stream {name!r}: {result}")
                return
            last = result.get("last-entry")
            newest = parse_id(last[0]) if last else None
            added = result.get("entries-added")
            stat = DeadLetterStat(source=source, size=int(result.get("length") or 0),
                                  newest_timestamp=newest[0] / 1000.0 if newest else None,
                                  produced=int(added) if added is not None else None, cursor=cursor,
                                  arrivals=0 if added is None else None)
            view.dlqs[(PLAIN, name)] = stat
            if newest is None:
                return
            start = cursor if isinstance(cursor, tuple) else None
            if start is not None and newest <= start:
                return
            stat.cursor = newest
            if sample:
                def on_new(entries):
                    if is_error(entries):
                        return
                    stat.sampled = [(None, _stream_reason(fields, options.max_payload_bytes)) for _, fields in entries]
                    if added is None:  # Redis 6: count what arrived by reading it
                        stat.arrivals = len(entries)
                rounds.add(on_new, "xrevrange", key, "+", after(start) if start else "-", sample)
        rounds.add(on_info, "xinfo_stream", key)
    else:
        view.error("dlq_type", f"dlq key {name!r} is a {kind}, not a list, sorted set or stream")


def _stream_reason(fields: dict, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> str | None:
    decoded = {label(k): v for k, v in fields.items()}
    for f in REASON_FIELDS:
        if f in decoded:
            return label(decoded[f])
    for f in ("payload", "data", "body", "message"):
        if f in decoded:
            r = reason_of(decoded[f], max_bytes)
            if r:
                return r
    return None


__all__ = ["DlqPatterns", "read_keys", "reason_of"]
