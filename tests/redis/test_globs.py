"""One SCAN walk for every pattern: the covering glob and the client-side matcher agree with Redis."""

from __future__ import annotations

import pytest

from mqwatch.checks.redis.globs import Matcher, covering_glob
from tests.helpers import collect_once

KEYS = ["jobs:1", "jobs:emails", "delay:x", "a]b", "a-b", "x\\y", "q?z", "qaz", "[lit]", "key*", "Ab", "zb",
        "é:1", "cache:9", ":dead", "orders:dead", "x:dlq", "b", "ab", "abc", "a^", "bull:q:meta", "bull:q:id"]
PATTERNS = ["jobs:*", "*:dead", "q?z", "[a-c]b", "[^a]b", "a\\]b", "x\\\\y", "key\\*", "\\[lit\\]", "[z-a]b",
            "a[\\^]", "é:*", "*", "bull:*:meta"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matcher_agrees_with_redis_keys(db, pattern):
    for k in KEYS:
        db.r.set(k, 1)
    want = sorted(db.r.keys(pattern))
    got = sorted(k.encode() for k in KEYS if Matcher([pattern]).index(k.encode()) == 0)
    assert got == want


@pytest.mark.parametrize("patterns", [["jobs:*", "delay:*", "stream:*"], ["bull:*:meta", "bull:*:id"],
                                      ["jobs:*", "*:dead"], ["[ab]*", "q?z"]])
def test_covering_glob_lets_every_match_through(db, patterns):
    for k in KEYS:
        db.r.set(k, 1)
    cover = covering_glob(patterns)
    through = set(db.r.keys(cover or "*"))
    assert all(set(db.r.keys(p)) <= through for p in patterns)


def test_one_walk_finds_what_every_pattern_matches_among_unrelated_keys(db):
    db.r.lpush("jobs:a", 1)
    db.r.zadd("delay:b", {"x": 1})
    db.r.lpush("orders:dead", 1)
    db.r.mset({f"cache:{i}": 1 for i in range(3000)})
    snap = collect_once(db.check(keys=["jobs:*", "delay:*"], dlq_keys=["*:dead"], frameworks=[], scan_count=100))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_redis_keys_scanned") == 3
    assert snap.value("mqwatch_queue_messages", queue="jobs:a", framework="plain") == 1
    assert snap.value("mqwatch_delayed_messages", queue="delay:b", framework="plain") == 1
    assert snap.value("mqwatch_dlq_messages", dlq="orders:dead", source="orders", framework="plain") == 1


def test_scan_call_budget_stops_the_walk_and_says_so(db):
    db.r.mset({f"cache:{i}": 1 for i in range(3000)})
    db.r.lpush("jobs:a", 1)
    snap = collect_once(db.check(keys=["jobs:*", "*:dead"], frameworks=[], scan_count=10, max_scan_calls=5))
    assert snap.ok, snap.error
    assert snap.value("mqwatch_redis_key_budget_exceeded") == 1
    assert any(r == "key_budget" and "max_scan_calls=5" in m for r, m in snap.errors), snap.errors
