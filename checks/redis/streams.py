"""Streams: length, entries added, and per consumer group lag, lag age, pending and idleness."""

from __future__ import annotations

from mqwatch.checks.redis.client import is_error, is_missing_key, label
from mqwatch.checks.redis.model import GroupStat, StreamStat


def parse_id(value) -> tuple[int, int] | None:
    """A stream ID as (milliseconds, sequence); None for anything else."""
    try:
        text = value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
        ms, _, seq = text.partition("-")
        return int(ms), int(seq or 0)
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


def after(stream_id: tuple[int, int]) -> str:
    """The smallest ID greater than stream_id, so XRANGE can start exclusively on Redis 6.0 too."""
    ms, seq = stream_id
    return f"{ms}-{seq + 1}" if seq < 2**64 - 1 else f"{ms + 1}-0"


def age_seconds(stream_id, now: float) -> float | None:
    parsed = parse_id(stream_id) if not isinstance(stream_id, tuple) else stream_id
    if parsed is None:
        return None
    return max(0.0, now - parsed[0] / 1000.0)


def known_lag(info: dict, group: dict) -> int | None:
    """A group's lag without reading entries, or None when only counting them can tell.

    Redis 7 reports `lag`, but as nil after deletions it cannot account for; Redis 6 has no
    `lag` at all. Both cases are decidable here whenever the group is caught up or behind
    the oldest entry still in the stream.
    """
    lag = group.get("lag")
    if lag is not None:
        return int(lag)
    length = int(info.get("length") or 0)
    delivered = parse_id(group.get("last-delivered-id") or b"0-0") or (0, 0)
    generated = parse_id(info.get("last-generated-id") or b"0-0") or (0, 0)
    if length == 0 or delivered >= generated:
        return 0
    first = info.get("first-entry")
    first_id = parse_id(first[0]) if first else None
    if first_id is not None and delivered < first_id:
        return length
    return None


def trimmed_unread(info: dict, group: dict) -> int | None:
    """Entries trimmed (MAXLEN, MINID, XTRIM) before the group read them, or None when unknown.

    Redis 7 keeps counting them in the group's `lag` (entries-added minus entries-read), so
    what trimming removed is that lag minus the entries still in the stream after the
    group's last-delivered-id. Trimming only removes the oldest entries, so those are all
    `length` entries when last-delivered-id is below the first entry, and none were lost
    otherwise. Without a `lag` (Redis 6, or XDEL left holes Redis cannot count) it is unknown.
    """
    lag = group.get("lag")
    if lag is None:
        return None
    length = int(info.get("length") or 0)
    delivered = parse_id(group.get("last-delivered-id") or b"0-0") or (0, 0)
    first = info.get("first-entry")
    first_id = parse_id(first[0]) if first else None
    if length and (first_id is None or delivered >= first_id):
        return 0
    return max(0, int(lag) - length)


def read_stream(rounds, key, now: float, lag_scan_limit: int, view, on_group_done=None, pending_scan: int = 0) -> None:
    name = label(key)
    state: dict = {}

    def on_info(result):
        if is_missing_key(result):
            return
        if is_error(result):
            view.error("key_changed", f"stream {name!r}: {result}")
            return
        state["info"] = result
        view.streams[name] = StreamStat(int(result.get("length") or 0), _int_or_none(result.get("entries-added")))
        if "groups" in state:
            _read_groups(rounds, key, name, state["info"], state["groups"], now, lag_scan_limit, view, pending_scan)

    def on_groups(result):
        if is_missing_key(result) or is_error(result):
            return  # on_info reports the key
        state["groups"] = result
        if "info" in state:
            _read_groups(rounds, key, name, state["info"], state["groups"], now, lag_scan_limit, view, pending_scan)

    rounds.add(on_info, "xinfo_stream", key)
    rounds.add(on_groups, "xinfo_groups", key)


def _int_or_none(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _read_groups(rounds, key, name, info, groups, now, lag_scan_limit, view, pending_scan=0) -> None:
    for group in groups:
        gname = group["name"]
        stat = GroupStat(name, label(gname), int(group.get("consumers") or 0), known_lag(info, group), None,
                         int(group.get("pending") or 0), None, None)
        view.groups.append(stat)
        delivered = parse_id(group.get("last-delivered-id") or b"0-0") or (0, 0)
        stat.delivered = (delivered[0] << 64) + delivered[1]
        stat.entries_read = _int_or_none(group.get("entries-read"))
        stat.unreadable = trimmed_unread(info, group)

        def on_first_undelivered(result, stat=stat):
            if is_error(result):
                return
            stat.lag_seconds = age_seconds(result[0][0], now) if result else 0.0

        def on_pending(result, stat=stat):
            if is_error(result):
                return
            stat.pending = int(result.get("pending") or 0)
            stat.pending_oldest_seconds = age_seconds(result["min"], now) if stat.pending and result.get("min") else (
                0.0 if not stat.pending else None)

        def on_consumers(result, stat=stat):
            if is_error(result):
                return
            idles = [int(c.get("idle", 0)) for c in result]
            stat.least_idle_seconds = min(idles) / 1000.0 if idles else None

        rounds.add(on_first_undelivered, "xrange", key, after(delivered), "+", 1)
        rounds.add(on_pending, "xpending", key, gname)
        rounds.add(on_consumers, "xinfo_consumers", key, gname)
        if pending_scan and stat.pending:
            rounds.add(_on_pending_entries(stat), "xpending_range", key, gname, "-", "+", pending_scan)
        elif pending_scan:
            stat.max_deliveries, stat.redelivered = 0, 0
        if stat.lag is None:
            _count_undelivered(rounds, key, stat, delivered, lag_scan_limit, view)


def _on_pending_entries(stat: GroupStat):
    """Delivery counts of the oldest `pending_scan` pending entries (XPENDING's extended form).

    A poison message stays pending and is delivered (claimed) again and again, so it is
    among the oldest entries of the pending list: the scan starts there.
    """
    def on_reply(result):
        if is_error(result):
            return
        counts = [int(e.get("times_delivered") or 0) for e in result]
        stat.max_deliveries = max(counts, default=0)
        stat.redelivered = sum(1 for c in counts if c > 1)

    return on_reply


_PAGE = 1000


def _count_undelivered(rounds, key, stat: GroupStat, start: tuple[int, int], limit: int, view, counted: int = 0) -> None:
    """Count entries after `start` page by page (IDs only matter), up to `limit` entries."""

    def on_page(result):
        if is_error(result):
            return
        total = counted + len(result)
        if len(result) < _PAGE:
            stat.lag = total
        elif total >= limit:
            view.error("stream_lag_limit", f"stream {stat.stream!r} group {stat.group!r}: more than {limit} "
                                           "undelivered entries to count (stream_lag_max_scan); lag not reported")
        else:
            last = parse_id(result[-1][0])
            _count_undelivered(rounds, key, stat, last, limit, view, total)

    rounds.add(on_page, "xrange", key, after(start), "+", _PAGE)
