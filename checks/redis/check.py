"""The Redis check: scans the configured keys and the job frameworks' layouts, then maps
one cycle's View onto the metric contract, keeping DLQ arrival counts across cycles.

Sharded (`--shard I/N`), every replica walks the keyspace (SCAN cannot be split by key
name), but reads (TYPE, LLEN, ZCARD, XINFO, ...) only the keys it owns. The job frameworks'
queues (Sidekiq, RQ, BullMQ, Celery: found in their own registries, few, and sharing sets
such as Sidekiq's dead and retry sets), the server's health and the scan's own figures are
read and exported by shard 0 only.
"""

from __future__ import annotations

import time

from mqwatch.agent.canary import emit_sequence
from mqwatch.agent.check import Check
from mqwatch.agent.counters import REBASE, Counters
from mqwatch.agent.dlq import UNKNOWN, ReasonCounts
from mqwatch.agent.flow import FlowTracker
from mqwatch.agent.snapshot import SnapshotBuilder
from mqwatch.agent.status import STATUSES, StatusTracker
from mqwatch.checks.redis import bullmq, celery, rq, sidekiq
from mqwatch.checks.redis.client import RedisClient, Rounds
from mqwatch.checks.redis.config import SCHEMA
from mqwatch.checks.redis.keyspace import DlqPatterns, read_keys
from mqwatch.checks.redis.metrics import ERROR_REASONS, METRICS
from mqwatch.checks.redis.model import PLAIN, View

# The key types that carry queue meaning; others matched by a pattern are skipped.
TYPES = ("list", "zset", "stream")
# A stream consumer idle longer than this is not consuming: Redis never removes dead consumers
# from a group, so membership alone cannot tell "stuck" (stalled) from "gone" (stopped).
ACTIVE_IDLE_SECONDS = 300.0
# Redis deletes a list, ZSET or stream when its last entry goes, so a drained DLQ's key
# disappears. It is the same DLQ when it comes back: its arrival totals are kept (not exported
# while the key is absent; ~300 bytes each) for this long, and for at most this many absent DLQs.
# Partial errors that are findings about data that was read, not a sign that keys may be missing
# from this cycle's view (those keep vanished DLQs' state until a complete read).
_FINDINGS = {"bad_payload", "stream_lag_limit", "dlq_type"}
DRAINED_MEMORY_SECONDS = 6 * 3600.0
DRAINED_MAX = 1000


class RedisCheck(Check):
    kind = "redis"
    config_schema = SCHEMA
    metrics = METRICS
    error_reasons = ERROR_REASONS

    def __init__(self, name, options, timeout):
        super().__init__(name, options, timeout)
        self._client: RedisClient | None = None
        self._dlq_patterns = DlqPatterns(options.dlq_keys)
        self._arrivals = Counters()
        self._reasons = ReasonCounts(mode=options.reasons)
        # DLQ state is keyed by (framework, dlq): two frameworks may name a DLQ alike.
        self._cursors: dict = {}  # dlq -> last score and its members / stream id / list length seen
        self._produced: dict = {}  # dlq -> last entries-added of a stream DLQ
        self._newest: dict = {}  # dlq -> last known newest dead-letter time
        self._arrival_keys: dict = {}  # dlq -> {source label}
        self._dead_sources: dict = {}  # Sidekiq dead job (member hash) -> its queue
        self._celery_seen: dict = {}  # (celery queue, delivery tag) -> first seen
        self._drained: dict = {}  # dlq whose key is gone -> (monotonic time it went, ((source, total), ...))
        # Stream IDs are positions but not message counts (see agent/status.py).
        self._status = StatusTracker(options.status_window, options.allowed_lag, positions_count_messages=False)
        self._flow = FlowTracker(options.status_window)
        self._stream_added = Counters()  # stream <- entries-added
        self._lost = Counters()  # (stream, group) <- entries trimmed before the group read them
        self._canary = None

    def client(self) -> RedisClient:
        if self._client is None:
            o = self.options
            self._client = RedisClient(o.url, o.username, o.password, self.timeout, o.tls)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def collect(self, out: SnapshotBuilder) -> None:
        client = self.client()
        if self.shard.first:
            emit_server(out, client.info())
        errors_before = len(out.errors)
        view = self.read(client, out)
        # A DLQ missing from an incomplete read (key budget, a failed reply) is unknown, not drained.
        complete = not any(r not in _FINDINGS for r, _ in list(view.errors) + out.errors[errors_before:])
        for reason, message in view.errors:
            out.error(reason, message)
        self.emit(out, view, complete)
        if self.options.canary.enabled:
            self.run_canary(out, client)

    def run_canary(self, out: SnapshotBuilder, client: RedisClient) -> None:
        from mqwatch.checks.redis.canary import StreamCanary

        o = self.options.canary
        if self._canary is None:
            self._canary = StreamCanary(o.key, o.timeout, o.lost_after)
        # below the connection's socket timeout, so a blocking read ends by itself
        failure = self._canary.run(client.redis, min(o.timeout, self.timeout * 0.5))
        if failure is not None:
            out.error("canary_" + failure[0], failure[1])
        out.add("mqwatch_canary_roundtrip_seconds", self._canary.stats.histogram())
        for stage, n in self._canary.stats.failure_counts().items():
            out.add("mqwatch_canary_failures_total", n, stage=stage)
        emit_sequence(out, self._canary.sequence_counts())

    # ---- reading ------------------------------------------------------------------------
    def read(self, client: RedisClient, out: SnapshotBuilder) -> View:
        o, now = self.options, time.time()
        first = self.shard.first
        frameworks = set(o.frameworks) if first else set()
        patterns = list(dict.fromkeys(list(o["keys"]) + list(o.dlq_keys)))
        discovery = []
        if "bullmq" in frameworks:
            discovery += bullmq.discovery_patterns(o.bullmq_prefix)
        if "celery" in frameworks:
            discovery.append(celery.BINDING_PATTERN)
        scan = client.scan(patterns + [d for d in discovery if d not in patterns], o.scan_count, o.max_keys,
                           o.max_scan_calls)
        if first:  # every shard walks the same keyspace: one exports what the walk saw
            out.add("mqwatch_redis_keys_scanned", len(scan.keys))
            out.add("mqwatch_redis_key_budget_exceeded", 1 if scan.exceeded else 0)
        if scan.exceeded == "keys":
            out.error("key_budget", f"more than max_keys={o.max_keys} keys match {patterns + discovery}; "
                                    "the rest were not looked at this cycle (narrow the patterns or raise max_keys)")
        elif scan.exceeded:
            out.error("key_budget", f"the keyspace did not fit in max_scan_calls={o.max_scan_calls} SCAN calls "
                                    f"of scan_count={o.scan_count}; keys past that were not looked at this cycle")

        view = View()
        rounds = Rounds(client, view.error)
        found: dict = {}
        if "sidekiq" in frameworks:
            sidekiq.discover(rounds, lambda qs: found.__setitem__("sidekiq", qs))
        if "rq" in frameworks:
            rq.discover(rounds, lambda qs: found.__setitem__("rq", qs))
        binding_keys = [k for k in scan.keys if k.startswith(b"_kombu.binding.")]
        if "celery" in frameworks:
            celery.discover(rounds, binding_keys, lambda qs: found.__setitem__("celery", qs))
        # The types of the keys the user's patterns matched, in the same pipelined round.
        candidates = [k for k, index in scan.keys.items() if index < len(patterns) and self.shard.owns(k)]
        kinds: list = []
        rounds.add_many(kinds.extend, [("type", k) for k in candidates])
        client.guard(rounds.run)
        bull_queues = bullmq.queues_from_keys(o.bullmq_prefix, scan.keys) if "bullmq" in frameworks else []

        owned = set(binding_keys)
        owned |= sidekiq.owned_keys(found.get("sidekiq") or [])
        owned |= rq.owned_keys(found.get("rq") or [])
        owned |= celery.owned_keys(found.get("celery") or [])
        bull_owns = bullmq.owns(o.bullmq_prefix, bull_queues)
        generic = []
        for k, kind in zip(candidates, kinds):
            kind = kind.decode() if isinstance(kind, bytes) else None
            if kind in TYPES and k not in owned and not bull_owns(k):
                generic.append((k, kind))

        read_keys(rounds, generic, o, self._dlq_patterns, self._cursors, now, view)
        if found.get("sidekiq"):
            sidekiq.read(rounds, found["sidekiq"], self._cursors, o.dlq_sample, now, view, self._dead_sources,
                         o.max_payload_bytes)
        if found.get("rq"):
            rq.read(rounds, found["rq"], self._cursors, o.dlq_sample, now, view, o.max_payload_bytes)
        if bull_queues:
            bullmq.read(rounds, o.bullmq_prefix, bull_queues, self._cursors, o.dlq_sample, now, view)
        live = celery.read(rounds, found["celery"], now, view, self._celery_seen, o.celery_read_max) \
            if found.get("celery") else {}
        client.guard(rounds.run)
        celery.prune(self._celery_seen, live)
        return view

    # ---- evaluation -------------------------------------------------------------------------
    def emit(self, out: SnapshotBuilder, view: View, complete: bool = True) -> None:
        for (fw, q), s in view.queues.items():
            out.add("mqwatch_queue_messages", s.messages, queue=q, framework=fw)
            if s.latency is not None:
                out.add("mqwatch_redis_queue_latency_seconds", s.latency if s.messages else 0.0, queue=q, framework=fw)
            if fw != PLAIN:
                out.add("mqwatch_redis_queue_framework", 1, queue=q, framework=fw)
        for (fw, q, state), n in view.jobs.items():
            out.add("mqwatch_redis_queue_jobs", n, queue=q, framework=fw, state=state)
        for (fw, q), paused in view.paused.items():
            out.add("mqwatch_redis_queue_paused", 1 if paused else 0, queue=q, framework=fw)
        for fw, n in view.workers.items():
            out.add("mqwatch_redis_workers", n, framework=fw)
        for (fw, q), n in view.max_deliveries.items():  # Sidekiq retry counts, BullMQ attemptsMade
            out.add("mqwatch_pending_max_deliveries", n, queue=q, framework=fw)
        for (fw, q, consumer), p in view.pending.items():
            out.add("mqwatch_pending_messages", p.messages, queue=q, consumer=consumer, framework=fw)
            if p.oldest_seconds is not None:
                out.add("mqwatch_pending_oldest_seconds", p.oldest_seconds, queue=q, consumer=consumer, framework=fw)
        for (fw, q), d in view.delayed.items():
            out.add("mqwatch_delayed_messages", d.messages, queue=q, framework=fw)
            out.add("mqwatch_delayed_overdue_messages", d.overdue, queue=q, framework=fw)
            out.add("mqwatch_delayed_overdue_seconds", d.overdue_seconds, queue=q, framework=fw)
        for q, s in view.streams.items():
            out.add("mqwatch_queue_messages", s.length, queue=q, framework=PLAIN)
            if s.entries_added is not None:  # a recreated stream starts again at 0: reset-safe
                out.add("mqwatch_queue_produced_total", self._stream_added.observe(q, s.entries_added), queue=q,
                        framework=PLAIN)
        self._stream_added.retain(view.streams)
        for g in view.groups:
            labels = {"queue": g.stream, "consumer": g.group}
            if g.lag is not None:
                out.add("mqwatch_consumer_lag_messages", g.lag, **labels)
            if g.lag_seconds is not None:
                out.add("mqwatch_consumer_lag_seconds", g.lag_seconds, **labels)
            out.add("mqwatch_pending_messages", g.pending, **labels, framework=PLAIN)
            if g.pending_oldest_seconds is not None:
                out.add("mqwatch_pending_oldest_seconds", g.pending_oldest_seconds, **labels, framework=PLAIN)
            out.add("mqwatch_consumer_members", g.members, **labels)
            if g.least_idle_seconds is not None:
                out.add("mqwatch_consumer_idle_seconds", g.least_idle_seconds, **labels)
            if g.lag is not None:
                active = g.members > 0 and g.least_idle_seconds is not None and g.least_idle_seconds < ACTIVE_IDLE_SECONDS
                verdict = self._status.observe((g.stream, g.group), (stream_position(g.delivered),), (g.lag,), active)
                for s in STATUSES:
                    out.add("mqwatch_consumer_status", 1 if s == verdict.status else 0, **labels, status=s)
        self.emit_flow(out, view)
        self._status.retain({(g.stream, g.group) for g in view.groups})
        self.emit_dlqs(out, view, complete)

    def emit_flow(self, out: SnapshotBuilder, view: View) -> None:
        """Per stream group: consumed (entries-read), drain ETA, rewinds (XGROUP SETID back), messages
        trimmed unread, and delivery counts of pending entries (agent/flow.py)."""
        now, live = time.time(), []
        for g in view.groups:
            if g.lag is None:
                continue
            key, labels = (g.stream, g.group), {"queue": g.stream, "consumer": g.group}
            live.append(key)
            known = g.entries_read is not None  # Redis 6 does not count what a group read
            flow = self._flow.observe(key, now, (0,) if known else (), (g.entries_read,) if known else (), g.lag)
            if known:
                out.add("mqwatch_consumer_consumed_total", flow.consumed, **labels)
                out.add("mqwatch_consumer_reprocessed_messages_total", flow.reprocessed, **labels)
            if flow.drain_seconds is not None:
                out.add("mqwatch_consumer_drain_seconds", flow.drain_seconds, **labels)
            if g.unreadable is not None:  # a trim the group later skips past must not take the count back
                self._lost.observe(key, g.unreadable, on_drop=REBASE)
            if self._lost.total(key) is not None:
                out.add("mqwatch_consumer_lost_messages_total", self._lost.total(key), **labels)
            if g.max_deliveries is not None:
                out.add("mqwatch_pending_max_deliveries", g.max_deliveries, **labels)
                out.add("mqwatch_pending_redelivered_messages", g.redelivered, **labels)
        self._flow.retain(live)
        self._lost.retain(live)

    def emit_dlqs(self, out: SnapshotBuilder, view: View, complete: bool = True) -> None:
        for key, stat in view.dlqs.items():
            fw, dlq = key
            self._restore_drained(key)
            new = self._new_arrivals(key, stat)
            sources = self._arrival_keys.setdefault(key, set())
            if stat.source:  # one source for the whole DLQ
                sources.add(stat.source)
                self._arrivals.add((key, stat.source), new)
            else:  # Sidekiq's dead set mixes queues: each job names its own
                attributed = 0
                for src, _ in stat.sampled[:new]:
                    src = src or UNKNOWN
                    sources.add(src)
                    self._arrivals.add((key, src), 1)
                    attributed += 1
                if new > attributed:
                    sources.add(UNKNOWN)
                    self._arrivals.add((key, UNKNOWN), new - attributed)
            for src in sources:
                total = self._arrivals.total((key, src))
                if total is not None:
                    out.add("mqwatch_dlq_messages_total", total, dlq=dlq, source=src, framework=fw)
            for _, reason in stat.sampled:
                self._reasons.add(key, reason or UNKNOWN)
            for reason, n in self._reasons.top(key).items():
                out.add("mqwatch_dlq_reason_messages", n, dlq=dlq, reason=reason, framework=fw)
            if stat.by_source is not None:  # depth and newest death per source queue
                for src, (n, newest) in stat.by_source.items():
                    out.add("mqwatch_dlq_messages", n, dlq=dlq, source=src, framework=fw)
                    if newest is not None:
                        out.add("mqwatch_dlq_last_message_timestamp_seconds", newest, dlq=dlq, source=src,
                                framework=fw)
            else:
                out.add("mqwatch_dlq_messages", stat.size, dlq=dlq, source=stat.source, framework=fw)
                newest = stat.newest_timestamp if stat.newest_timestamp is not None else self._newest.get(key)
                if stat.size and newest is not None:
                    self._newest[key] = newest
                    out.add("mqwatch_dlq_last_message_timestamp_seconds", newest, dlq=dlq, source=stat.source,
                            framework=fw)
            self._cursors[key] = stat.cursor
        if complete:
            self._forget_vanished(set(view.dlqs))

    def _forget_vanished(self, live: set) -> None:
        """Read positions and reasons of vanished DLQs go (a key that comes back starts empty,
        so all of it is new); only their arrival totals stay, compactly (see DRAINED_*)."""
        now = time.monotonic()
        for key in [k for k in self._arrival_keys if k not in live]:
            totals = tuple((src, self._arrivals.total((key, src)) or 0.0) for src in sorted(self._arrival_keys.pop(key)))
            self._drained[key] = (now, totals)
        while len(self._drained) > DRAINED_MAX:  # oldest first: dicts keep insertion order
            del self._drained[next(iter(self._drained))]
        for key in [k for k, (went, _) in self._drained.items() if now - went > DRAINED_MEMORY_SECONDS]:
            del self._drained[key]
        for state in (self._cursors, self._produced, self._newest):
            for k in [k for k in state if k not in live]:
                del state[k]
        self._arrivals.retain({(d, s) for d, srcs in self._arrival_keys.items() for s in srcs})
        self._reasons.retain(live)

    def _restore_drained(self, key) -> None:
        """A drained DLQ's key is back: its arrivals continue from the totals kept."""
        drained = self._drained.pop(key, None)
        if drained is not None:
            sources = self._arrival_keys.setdefault(key, set())
            for src, total in drained[1]:
                sources.add(src)
                self._arrivals.add((key, src), total)

    def _new_arrivals(self, dlq: str, stat) -> int:
        if stat.arrivals is not None:
            return stat.arrivals
        if stat.produced is not None:  # a stream's entries-added: a drop means it was recreated
            last = self._produced.get(dlq)
            self._produced[dlq] = stat.produced
            return stat.produced if last is None or stat.produced < last else stat.produced - last
        last = self._cursors.get(dlq)  # a list: only its length is known; growth is arrivals
        return stat.size if not isinstance(last, int) else max(0, stat.size - last)


def emit_server(out: SnapshotBuilder, info: dict) -> None:
    def num(key):
        v = info.get(key)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    simple = {
        "mqwatch_redis_used_memory_bytes": "used_memory", "mqwatch_redis_maxmemory_bytes": "maxmemory",
        "mqwatch_redis_evicted_keys_total": "evicted_keys", "mqwatch_redis_expired_keys_total": "expired_keys",
        "mqwatch_redis_rejected_connections_total": "rejected_connections",
        "mqwatch_redis_connected_clients": "connected_clients", "mqwatch_redis_blocked_clients": "blocked_clients",
        "mqwatch_redis_connected_replicas": "connected_slaves", "mqwatch_redis_uptime_seconds": "uptime_in_seconds",
    }
    for metric, key in simple.items():
        if num(key) is not None:
            out.add(metric, num(key))
    used, limit = num("used_memory"), num("maxmemory")
    if used is not None and limit:
        out.add("mqwatch_redis_memory_used_ratio", used / limit)
    role = "replica" if info.get("role") == "slave" else info.get("role")
    for r in ("master", "replica"):
        out.add("mqwatch_redis_replication_role", 1 if role == r else 0, role=r)
    if role == "replica":
        out.add("mqwatch_redis_master_link_up", 1 if info.get("master_link_status") == "up" else 0)
    if "rdb_last_bgsave_status" in info:
        out.add("mqwatch_redis_rdb_last_bgsave_ok", 1 if info["rdb_last_bgsave_status"] == "ok" else 0)
    if num("aof_enabled"):
        out.add("mqwatch_redis_aof_last_write_ok", 1 if info.get("aof_last_write_status") == "ok" else 0)


def stream_position(delivered: int) -> int:
    """A stream ID (milliseconds << 64 | sequence) as a 63-bit position for the status window:
    milliseconds << 20 | sequence, the sequence capped at 2**20 - 1 (more entries than that
    within one millisecond only look like no move; explicit IDs beyond year 2248 share one)."""
    ms, seq = min(delivered >> 64, (1 << 43) - 1), delivered & ((1 << 64) - 1)
    return (ms << 20) | min(seq, (1 << 20) - 1)
