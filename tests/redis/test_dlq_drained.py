"""Issue 18 item 4: a Redis DLQ key disappears when its last dead letter is removed, and comes
back with the next one. It is the same DLQ: its arrivals count continues instead of restarting,
so `increase()` sees the new arrivals and no `resets()` clause is needed to hide a false one."""

from __future__ import annotations

import json
import time

import pytest

from mqwatch.agent.scheduler import Collector
from tests.helpers import make_check


@pytest.mark.parametrize("kind", ["zset", "list", "stream"])
def test_drained_dlq_keeps_its_arrivals_count(db, kind):
    key = f"orders:{kind}:dead"
    now = time.time()

    def dead_letters(n: int) -> None:
        for i in range(n):
            body = json.dumps({"error": "Timeout", "id": time.monotonic_ns()})
            if kind == "zset":
                db.r.zadd(key, {body: now + i})
            elif kind == "list":
                db.r.lpush(key, body)
            else:
                db.r.xadd(key, {"payload": body})

    _, check = make_check(db.check(keys=[], dlq_keys=["*:dead"], frameworks=[]))
    labels = {"dlq": key, "source": f"orders:{kind}"}

    def collect():
        snap = Collector(check, 5).collect()
        assert snap.ok, snap.error
        return snap

    dead_letters(3)
    assert collect().value("mqwatch_dlq_messages_total", **labels) == 3
    db.r.delete(key)  # drained: the key is gone
    drained = collect()
    assert drained.value("mqwatch_dlq_messages_total", **labels) is None  # no series of an absent key
    assert collect().value("mqwatch_dlq_messages", **labels) is None
    now += 100
    dead_letters(2)  # the next dead letters recreate the key
    snap = collect()
    assert snap.value("mqwatch_dlq_messages", **labels) == 2
    assert snap.value("mqwatch_dlq_messages_total", **labels) == 5, "3 before the drain + 2 after, not a reset to 2"
    # Reasons are sampled counts of what was read: only the arrivals since the key came back.
    assert snap.value("mqwatch_dlq_reason_messages", dlq=key, reason="Timeout") == 2
