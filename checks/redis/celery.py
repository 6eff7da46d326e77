"""Celery's Redis broker, i.e. kombu's Redis transport (celery/kombu kombu/transport/redis.py):

- `_kombu.binding.<exchange>`: SETs of `routing_key SEP pattern SEP queue` (SEP = '\\x06\\x16').
- A queue is a LIST named like the queue, LPUSHed; priorities other than 0 go to
  `<queue>SEP<priority>` for the default priority_steps 3, 6, 9.
- Delivered, unacknowledged messages: HASH `unacked` (delivery tag -> [message, exchange,
  routing key]) and ZSET `unacked_index` (delivery tag -> delivery time, seconds).
- A message is JSON with `headers` (Celery protocol 2: `eta` ISO time of an eta/countdown task,
  else null) and `properties.delivery_tag`. It records no enqueue time: a queue's latency is
  how long mqwatch has seen its oldest ready message (a lower bound, exact to one interval).
- eta/countdown tasks sit in the queue until a worker fetches them, then wait in `unacked`
  (held by the worker, Celery's `inspect scheduled`) until their eta.
"""

from __future__ import annotations

import datetime as dt
import json

from mqwatch.checks.redis.client import is_error, label
from mqwatch.checks.redis.model import DelayedStat, PendingStat, QueueStat

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


def read(rounds, queues, now: float, view, seen: dict, read_max: int) -> dict:
    """`seen` maps (queue, delivery tag) -> when mqwatch first saw the message, across cycles;
    `read_max` bounds the messages read per list to find eta tasks and the oldest ready one.
    Returns the messages seen this cycle, filled in as the rounds run: prune(seen, it) after."""
    live: dict = {}
    for q in queues:
        name = label(q)
        queue = _Queue(name, now, seen, live, view)
        for key in (q, *(q + SEP + str(p).encode() for p in PRIORITY_STEPS)):
            rounds.add(queue.list_length(rounds, key, read_max), "llen", key)

    state: dict = {}

    def done():
        if len(state) == 3:
            oldest = state["oldest"]
            view.pending[(NAME, "unacked", None)] = PendingStat(
                state["count"], max(0.0, now - oldest) if oldest else 0.0)

    def on_count(result):
        state["count"] = 0 if is_error(result) else int(result)
        if state["count"] and state["count"] <= read_max:
            rounds.add(on_held, "hvals", UNACKED)
        else:
            state["held"] = None
        done()

    def on_held(values):
        # Tasks a worker holds until their eta: scheduled, not running.
        state["held"] = None
        if not is_error(values):
            for v in values:
                try:
                    message, _exchange, routing_key = json.loads(v)
                except (ValueError, TypeError):
                    continue
                eta = eta_of(message)
                if eta is not None and eta > now:
                    _delayed(view, label(routing_key)).messages += 1
        done()

    def on_oldest(result):
        state["oldest"] = result[0][1] if result and not is_error(result) else None
        done()

    rounds.add(on_count, "hlen", UNACKED)
    rounds.add(on_oldest, "zrange", UNACKED_INDEX, 0, 0, False, True)
    return live


def prune(seen: dict, live: dict) -> None:
    """Forget messages no longer seen in any queue (consumed, or beyond read_max)."""
    for key in [k for k in seen if k not in live]:
        del seen[key]
    seen.update(live)


def _delayed(view, queue: str) -> DelayedStat:
    return view.delayed.setdefault((NAME, queue), DelayedStat(0, 0, 0.0))


class _Queue:
    def __init__(self, name, now, seen, live, view):
        self.name, self.now, self.seen, self.live, self.view = name, now, seen, live, view
        self.stat = view.queues[(NAME, name)] = QueueStat(0, 0.0)
        _delayed(view, name)

    def list_length(self, rounds, key, read_max):
        def on_len(result):
            if is_error(result):
                self.view.error("key_changed", f"celery queue {self.name!r}: {result}")
                return
            n = int(result)
            self.stat.messages += n
            if n:
                # The oldest messages are at the tail (LPUSH in, BRPOP out).
                rounds.add(self.messages, "lrange", key, -min(n, read_max), -1)
        return on_len

    def messages(self, items):
        if is_error(items):
            return
        delayed = self.view.delayed[(NAME, self.name)]
        for raw in items:
            try:
                message = json.loads(raw)
            except (ValueError, TypeError):
                continue
            eta = eta_of(message)
            if eta is not None:
                delayed.messages += 1
                if eta > self.now:
                    self.stat.messages -= 1  # not ready: counted apart from the backlog
                    continue
                delayed.overdue += 1
                delayed.overdue_seconds = max(delayed.overdue_seconds, self.now - eta)
            tag = _tag(message)
            if tag is None:
                continue
            first = self.seen.get((self.name, tag), self.now)
            self.live[(self.name, tag)] = first
            self.stat.latency = max(self.stat.latency, self.now - first)


def _tag(message):
    props = message.get("properties") if isinstance(message, dict) else None
    tag = props.get("delivery_tag") if isinstance(props, dict) else None
    return str(tag) if tag is not None else None


def eta_of(message) -> float | None:
    """Unix time of a message's eta/countdown, or None for a task to run now."""
    headers = message.get("headers") if isinstance(message, dict) else None
    eta = headers.get("eta") if isinstance(headers, dict) else None
    if not isinstance(eta, str):
        return None
    try:
        t = dt.datetime.fromisoformat(eta)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()
