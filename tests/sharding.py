"""Helpers for the sharding tests: one unsharded check and N sharded ones on the same broker state."""

from __future__ import annotations

from collections import Counter

from mqwatch.agent.sharding import Shard, owner
from tests.helpers import collect_once, make_check

# Values that depend on the moment of collection (now - a record's time): compared within this.
CLOCK_SLACK_SECONDS = 30.0


def names_covering(prefix: str, count: int, per_shard: int, shards: int) -> list[str]:
    """`prefix-0`, `prefix-1`, ... until every one of `shards` shards owns at least `per_shard`
    of them, so a test of the split never depends on luck."""
    names, owned = [], Counter()
    i = 0
    while len(names) < count or min(owned[s] for s in range(shards)) < per_shard:
        name = f"{prefix}-{i}"
        names.append(name)
        owned[owner(name, shards)] += 1
        i += 1
    return names


def collect_sharded(check: dict, shards: int, cycles: int = 1):
    """(unsharded snapshot, [snapshot of shard i]) of the same config, each check's last of
    `cycles` collections (later cycles use what the first ones learnt); checks closed after."""
    checks = []
    try:
        for shard in [None] + [Shard(i, shards) for i in range(shards)]:
            _, c = make_check(check)
            if shard is not None:
                c.shard = shard
            checks.append(c)
        for _ in range(cycles - 1):
            for c in checks:
                assert collect_once(c).ok
        snaps = [collect_once(c) for c in checks]
    finally:
        for c in checks:
            c.close()
    for s in snaps:
        assert s.ok, s.error
    return snaps[0], snaps[1:]


def series(snap) -> dict:
    """{(metric, labels): value} of one snapshot."""
    return {(name, labels): value for name, items in snap.families.items() for labels, value in items}


def assert_union_equals(whole, parts, volatile=()) -> dict:
    """The union of the shards' series is the unsharded one's: same label sets, same values,
    none exported by two shards. Returns {series key: shard index}. `volatile`: metrics whose
    value moves by itself between two reads (a server's memory, its clients), compared by
    label set only."""
    where: dict = {}
    twice = []
    for i, snap in enumerate(parts):
        for key in series(snap):
            if key in where:
                twice.append((key, where[key], i))
            where[key] = i
    assert not twice, f"series exported by two shards: {twice[:5]}"
    want, got = series(whole), {k: v for snap in parts for k, v in series(snap).items()}
    assert set(got) == set(want), (sorted(set(want) - set(got))[:10], sorted(set(got) - set(want))[:10])
    for key, value in want.items():
        if key[0] in volatile or got[key] == value:  # == also for +Inf (a drain that never ends)
            continue
        if key[0].endswith("_seconds") and "timestamp" not in key[0]:
            assert abs(got[key] - value) <= CLOCK_SLACK_SECONDS, (key, value, got[key])
        else:
            assert got[key] == value, (key, value, got[key])
    return where
