"""Celery's Redis broker, i.e. kombu's Redis transport (celery/kombu kombu/transport/redis.py):

- `_kombu.binding.<exchange>`: SETs of `routing_key SEP pattern SEP queue` (SEP = '\\x06\\x16').
- A queue is a LIST named like the queue, LPUSHed; priorities other than 0 go to
  `<queue>SEP<priority>` for the default priority_steps 3, 6, 9.
- Delivered, unacknowledged messages: HASH `unacked` (delivery tag -> [message, exchange,
  routing key]) and ZSET `unacked_index` (delivery tag -> delivery time, seconds).
"""

from __future__ import annotations

from checks.redis.client import is_error, label
from checks.redis.model import PendingStat, QueueStat, add_length

NAME = "celery"
BINDING_PATTERN = "_kombu.binding.*"
SEP = b"\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
UNACKED, UNACKED_INDEX = b"unacked", b"unacked_index"
# Event and broadcast (pidbox) exchanges are fanout over PUB/SUB: their queues hold no LIST.
_FANOUT_EXCHANGES = (b"_kombu.binding.celeryev",)


def discover(rounds, binding_keys, found) -> None:
    keys = [k for k in binding_keys if k not in _FANOUT_EXCHANGES and not k.endswith(b".pidbox")]
    if not keys:
        found([])
        return
    queues: set = set()
    left = [len(keys)]

    def on_members(members):
        if not is_error(members):
            for m in members:
                parts = m.split(SEP)
                if len(parts) == 3 and parts[2]:
                    queues.add(parts[2])
        left[0] -= 1
        if left[0] == 0:
            found(sorted(queues))

    for k in keys:
        rounds.add(on_members, "smembers", k)


def owned_keys(queues) -> set:
    keys = {UNACKED, UNACKED_INDEX, b"unacked_mutex"}
    for q in queues:
        keys.add(q)
        keys.update(q + SEP + str(p).encode() for p in PRIORITY_STEPS)
    return keys


def read(rounds, queues, now: float, view) -> None:
    for q in queues:
        stat = QueueStat(0, None, NAME)
        view.queues[label(q)] = stat

        add = add_length(stat, view, f"celery queue {label(q)!r}")

        for key in (q, *(q + SEP + str(p).encode() for p in PRIORITY_STEPS)):
            rounds.add(add, "llen", key)

    state: dict = {}

    def done():
        if len(state) == 2:
            oldest = state["oldest"]
            view.pending[("unacked", None)] = PendingStat(state["count"], max(0.0, now - oldest) if oldest else 0.0)

    def on_count(result):
        state["count"] = 0 if is_error(result) else int(result)
        done()

    def on_oldest(result):
        state["oldest"] = result[0][1] if result and not is_error(result) else None
        done()

    rounds.add(on_count, "hlen", UNACKED)
    rounds.add(on_oldest, "zrange", UNACKED_INDEX, 0, 0, False, True)
