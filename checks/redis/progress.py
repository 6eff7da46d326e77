"""Redis 6 stream groups: consumed as acknowledged progress, since Redis 6 has no `entries-read`.

A group's acknowledged progress is the entries it has moved past (delivered, or skipped with
`XGROUP SETID` forward) minus those still pending (delivered, not yet acknowledged). Redis 6
gives neither count, only `last-delivered-id` and `pending` (one XINFO GROUPS reply, so the
two agree). So each cycle the read counts the stream entries between the previous cycle's
last-delivered-id and this one's (a bounded XRANGE, see streams.count_between) and this module
adds them up per group:

    position = entries counted past so far (the first time: stream length - lag) - pending

The position feeds agent/counters.py with `REBASE`: it grows as entries are acknowledged
(or moved past unread), and it only drops when what the group moved past could not all be
counted (entries trimmed before the XRANGE saw them, while still pending); a drop adds
nothing and later growth counts from there, so the counter never counts twice. A rewind
(`XGROUP SETID` back) adds nothing; what the group then reads again counts again, as a
Kafka group that re-commits after a rewind does.

Per group only the last-delivered-id and the count so far are kept.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from mqwatch.agent.counters import REBASE, Counters


class AckedProgress:
    def __init__(self):
        self._seen: dict = {}  # (stream, group) -> (last-delivered-id as (ms, seq), entries counted past)
        self._consumed = Counters()

    def last_delivered(self, key: Hashable) -> tuple[int, int] | None:
        """The previous cycle's last-delivered-id of a group, where the read starts counting."""
        seen = self._seen.get(key)
        return seen[0] if seen else None

    def observe(self, key: Hashable, delivered_id: tuple[int, int], moved: int | None, first_past: int | None,
                pending: int) -> float | None:
        """One cycle of a group: `moved` entries counted after the previous last-delivered-id
        (None: not counted this cycle, adds nothing), `first_past` the entries up to
        last-delivered-id still in the stream (used the first time; None: unknown, the group is
        not tracked yet), `pending` XINFO's count. Returns the group's consumed total, or None."""
        seen = self._seen.get(key)
        if seen is None:
            if first_past is None:
                return None
            past = max(0, first_past)
        else:
            past = seen[1] + (moved or 0)
        self._seen[key] = (delivered_id, past)
        return self._consumed.observe(key, max(0, past - pending), on_drop=REBASE)

    def retain(self, keys: Iterable[Hashable]) -> None:
        keep = set(keys)
        for k in [k for k in self._seen if k not in keep]:
            del self._seen[k]
        self._consumed.retain(keep)
