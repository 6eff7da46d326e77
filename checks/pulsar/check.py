"""The Pulsar check: one cycle's ClusterState (from the admin API or /metrics) -> the metric contract."""

from __future__ import annotations

import time

from mqwatch.agent.check import Check, CheckError
from mqwatch.agent.canary import emit_sequence
from mqwatch.agent.counters import Counters
from mqwatch.agent.flow import FlowTracker
from mqwatch.agent.schema import matches
from mqwatch.agent.snapshot import SnapshotBuilder
from mqwatch.agent.status import STATUSES, StatusTracker
from mqwatch.agent.timelag import LOWER_BOUND, OffsetTimeline
from mqwatch.checks.pulsar.admin import AdminClient, BadReply
from mqwatch.checks.pulsar.config import SCHEMA
from mqwatch.checks.pulsar.deadletters import DLQ, classify, shard_topics
from mqwatch.checks.pulsar.http import HttpError
from mqwatch.checks.pulsar.metrics import ERROR_REASONS, METRICS
from mqwatch.checks.pulsar.model import ClusterState, TopicState
from mqwatch.checks.pulsar.retention import NamespaceLimits, namespace_of
from mqwatch.checks.pulsar.scrape import MetricsScraper

# Network calls must end before the scheduler abandons the collection.
_DEADLINE_SHARE = 0.85


class PulsarCheck(Check):
    kind = "pulsar"
    config_schema = SCHEMA
    metrics = METRICS
    error_reasons = ERROR_REASONS

    def __init__(self, name, options, timeout):
        super().__init__(name, options, timeout)
        self._admin: AdminClient | None = None
        self._scraper: MetricsScraper | None = None
        self._binary = None
        self._canary = None
        self._sampler = None
        self.status = StatusTracker(options.status_window, options.allowed_lag)
        self.timeline = OffsetTimeline()
        # Per (partition, broker) msgInCounter: a reset or one broker's failed scrape moves no total.
        self.produced = Counters()
        self.arrivals = Counters()
        self._dlq_last_arrival: dict[str, float] = {}
        self._last_produced: dict[tuple, float] = {}
        self._positions: dict[tuple, tuple] = {}  # (topic, subscription, partition) -> (published, backlog, position)
        self.flow = FlowTracker(options.status_window)
        self.expired = Counters()  # (topic, subscription) <- each partition's totalMsgExpired
        self.delivered = Counters()  # (topic, subscription) <- each partition's msgOutCounter
        self.limits = NamespaceLimits(options.retention_refresh)

    # ---- clients, created lazily so a bad setting fails a collection, not the agent ----

    def _token_hosts(self) -> list[str]:
        """Where the token may go: the configured URLs and auth.allowed_hosts, nothing learnt."""
        o = self.options
        return [*o.metrics_url, *([o.admin_url] if o.admin_url else []), *o.auth.allowed_hosts]

    def _request_timeout(self) -> float:
        return min(self.options.request_timeout, self.timeout * _DEADLINE_SHARE)

    def admin(self) -> AdminClient:
        if self._admin is None:
            o = self.options  # an HttpError("tls") from here is handled by fetch_state
            self._admin = AdminClient(o.admin_url, o.auth, o.tls, self._request_timeout(), o.max_concurrency,
                                      o.max_admin_bytes, self._token_hosts())
        return self._admin

    def scraper(self) -> MetricsScraper:
        if self._scraper is None:
            o = self.options
            try:
                self._scraper = MetricsScraper(list(o.metrics_url), o.auth, o.tls, self._request_timeout(),
                                               o.max_metrics_bytes, self._token_hosts())
            except HttpError as e:  # tls files that no longer load
                raise CheckError(e.reason, str(e)) from None
        return self._scraper

    def binary(self):
        if self._binary is None:
            from mqwatch.checks.pulsar.binary import connect

            self._binary = connect(self.options.service_url, self.options.auth, self.options.tls, self._request_timeout())
        return self._binary

    def close(self) -> None:
        for name in ("_admin", "_scraper"):
            client = getattr(self, name)
            if client is not None:
                client.close()
                setattr(self, name, None)
        if self._canary is not None:
            self._canary.reset()
        if self._sampler is not None:
            self._sampler.close()
        if self._binary is not None:
            try:
                self._binary.close()
            except Exception:
                pass
            self._binary = None

    # ---- one collection ----------------------------------------------------------------

    def collect(self, out: SnapshotBuilder) -> None:
        started = time.monotonic()
        deadline = started + self.timeout * _DEADLINE_SHARE
        state = self.fetch_state(out, deadline)
        now = time.time()
        state.topics = {n: t for n, t in state.topics.items() if matches(self.options.topics, n)}
        if self.shard.first:
            self.emit_brokers(out, state)
        if self.options.admin_url and state.source == "admin":
            for reason, message in self.limits.update(self.admin(), {namespace_of(t) for t in state.topics}, deadline):
                out.error(reason, message)
        letters = classify(state.topics)
        if self.shard.sharded:  # the siblings read to name the DLQs' sources are other shards' to export
            state.topics = {n: t for n, t in state.topics.items() if self.shard.owns(n)}
            letters = {n: info for n, info in letters.items() if n in state.topics}
        for name in sorted(state.topics):
            self.emit_topic(out, state.topics[name], now)
        self.emit_dead_letters(out, state, letters, now, deadline)
        # Something could not be read (a broker's /metrics, a namespace listing): what is
        # missing is unknown, not gone, so no state of a "vanished" topic is dropped this cycle.
        if state.complete:
            self._prune(state, sorted(n for n, info in letters.items() if info.kind == DLQ))
        if self.options.canary.enabled and self.shard.first:
            self.run_canary(out, deadline)

    def fetch_state(self, out: SnapshotBuilder, deadline: float) -> ClusterState:
        """Admin API when configured (it knows more); /metrics otherwise or when the admin API is down."""
        if self.options.admin_url:
            try:
                state, errors = self.admin().fetch(lambda t: matches(self.options.topics, t), deadline,
                                                   self._keep(), broker_health=self.shard.first)
                for reason, message in errors:
                    out.error(reason, message)
                return state
            except (HttpError, BadReply) as e:
                reason = e.reason if isinstance(e, HttpError) else "bad_reply"
                if not self.options.metrics_url:
                    raise CheckError(reason, f"admin API {self.options.admin_url}: {e}") from None
                out.error(reason, f"admin API {self.options.admin_url}: {e}; using /metrics instead")
        state, errors = self.scraper().fetch(deadline, self._keep())
        for reason, message in errors:
            out.error(reason, message)
        if state.brokers and not any(state.brokers.values()):
            reason = errors[0][0] if errors else "connection"
            raise CheckError(reason, "no broker /metrics endpoint could be read: " + "; ".join(m for _, m in errors))
        return state

    def _keep(self):
        """Sharded: which topics' stats to read (agent/sharding.py); None reads them all."""
        if not self.shard.sharded:
            return None
        return lambda names: shard_topics(names, self.shard.owns)

    def emit_brokers(self, out: SnapshotBuilder, state: ClusterState) -> None:
        if state.brokers:  # empty only when broker health could not be checked in time
            out.add("mqwatch_brokers", len(state.brokers))
        for broker, healthy in sorted(state.brokers.items()):
            out.add("mqwatch_pulsar_broker_healthy", 1 if healthy else 0, broker=broker)

    def emit_topic(self, out: SnapshotBuilder, topic: TopicState, now: float) -> None:
        q = topic.name
        parts = sorted(topic.partitions.items())
        out.add("mqwatch_pulsar_topic_partitions", max(1, sum(1 for n, _ in parts if n >= 0)), queue=q)
        if self._observe_produced(self.produced, q, parts):
            out.add("mqwatch_queue_produced_total", self.produced.total(q), queue=q)
        stored = [p.storage_bytes for _, p in parts if p.storage_bytes is not None]
        if stored:
            out.add("mqwatch_queue_bytes", sum(stored), queue=q)
        counter_reset = False
        for n, p in parts:
            if p.produced is not None:
                last = self._last_produced.get((q, n))
                counter_reset |= last is not None and p.produced < last
                self._last_produced[(q, n)] = p.produced
                self.timeline.observe((q, n), int(p.produced), now)

        backlogs = []
        for sub in sorted(topic.subscription_names()):
            if not matches(self.options.subscriptions, sub):
                continue
            per_part = [(n, p.produced, p.subscriptions[sub]) for n, p in parts if sub in p.subscriptions]
            backlog = sum(s.backlog for _, _, s in per_part)
            consumers = max(s.consumers for _, _, s in per_part)  # one consumer attaches to every partition
            backlogs.append(backlog)
            out.add("mqwatch_consumer_lag_messages", backlog, queue=q, consumer=sub)
            out.add("mqwatch_pending_messages", sum(s.unacked for _, _, s in per_part), queue=q, consumer=sub)
            out.add("mqwatch_consumer_members", consumers, queue=q, consumer=sub)
            out.add("mqwatch_consumer_blocked", 1 if any(s.blocked for _, _, s in per_part) else 0, queue=q, consumer=sub)
            seconds = self.lag_seconds(q, per_part, now)
            if seconds is not None:
                out.add("mqwatch_consumer_lag_seconds", seconds, queue=q, consumer=sub)
                limit = self.limits.seconds.get(namespace_of(q))
                if limit is not None:  # how long until the TTL or a backlog quota deletes unread messages
                    out.add("mqwatch_consumer_retention_headroom_seconds", max(0.0, limit - seconds),
                            queue=q, consumer=sub)
            positions = [self._position((q, sub, n), prod, s.backlog, s.last_acked_ms) for n, prod, s in per_part]
            if counter_reset:  # msgInCounter restarts when the topic moves to another broker: not a rewind
                self.status.forget((q, sub))
            verdict = self.status.observe((q, sub), positions, [s.backlog for _, _, s in per_part], consumers > 0,
                                          [n for n, _, _ in per_part])
            for st in STATUSES:
                out.add("mqwatch_consumer_status", 1 if st == verdict.status else 0, queue=q, consumer=sub, status=st)
            self.emit_flow(out, q, sub, per_part, backlog, now)
        if backlogs:
            # Pulsar keeps what the slowest subscription has not acknowledged.
            out.add("mqwatch_queue_messages", max(backlogs), queue=q)

    def emit_flow(self, out: SnapshotBuilder, q: str, sub: str, per_part, backlog: float, now: float) -> None:
        """Consumed (the broker's delivered counter), drain ETA and messages expired by the TTL
        before anyone consumed them (agent/flow.py).

        Pulsar has no committed offset to take advances of: the position mqwatch derives for
        the status (published - backlog) jumps with pulsar-lite's stale backlogs, so consumed
        counts the subscription's msgOutCounter (`pulsar_out_messages_total{subscription}`),
        which includes redeliveries, per partition and reset-safe. No reprocessed series.
        """
        key, labels = (q, sub), {"queue": q, "consumer": sub}
        flow = self.flow.observe(key, now, (), (), backlog)
        if flow.drain_seconds is not None:
            out.add("mqwatch_consumer_drain_seconds", flow.drain_seconds, **labels)
        for n, _, s in per_part:
            if s.delivered is not None:
                self.delivered.observe(key, s.delivered, upstream=n)
            if s.expired is not None:
                self.expired.observe(key, s.expired, upstream=n)
        if self.delivered.total(key) is not None:
            out.add("mqwatch_consumer_consumed_total", self.delivered.total(key), **labels)
        if self.expired.total(key) is not None:
            out.add("mqwatch_consumer_lost_messages_total", self.expired.total(key), **labels)

    def _position(self, key, produced, backlog, acked_ms) -> float:
        """The consumed position (published - backlog) plays the committed offset's part.

        Pulsar refreshes backlogs on its stats interval while the published counter can be
        fresher (pulsar-lite: a live counter, backlogs every 5 s), so published - backlog
        runs ahead by what was published since the backlog's snapshot, then falls back: a
        false "moved", then a false "rewound". So:
        - a fall larger than everything published since the previous reading is a real
          cursor reset (the backlog grew by more than could arrive): taken as is;
        - otherwise the position only moves when the subscription acknowledged something
          since (last acked timestamp, where the broker reports it), and, without that
          signal, only on a fresh backlog (it changed, or nothing was published);
        - a smaller fall is staleness, not a rewind.
        A cursor reset smaller than one interval's traffic is therefore not `rewound` here.
        """
        produced = produced or 0.0
        derived = produced - backlog
        last = self._positions.get(key)  # (published, backlog, position, last acked ms)
        if last is None:
            position = derived
        else:
            published_since = max(0.0, produced - last[0])
            if last[2] - derived > published_since:
                position = derived
            elif acked_ms is not None and last[3] is not None and acked_ms == last[3]:
                position = last[2]
            elif acked_ms is None and backlog == last[1] and produced != last[0]:
                position = last[2]
            else:
                position = max(derived, last[2])
        self._positions[key] = (produced, backlog, position, acked_ms)
        return position

    def lag_seconds(self, queue: str, per_part, now: float) -> float | None:
        """Admin: now - earliest publish time in the backlog. /metrics: the msgIn history estimator."""
        if all(s.backlog <= 0 for _, _, s in per_part):
            return 0.0
        earliest = [s.earliest_publish_ms for _, _, s in per_part if s.backlog > 0 and s.earliest_publish_ms]
        if earliest:
            return max(0.0, now - min(earliest) / 1000.0)
        worst = None
        for n, produced, s in per_part:
            if s.backlog <= 0 or produced is None:
                continue
            est = self.timeline.estimate((queue, n), int(produced - s.backlog), now)
            if est is not None and not (est.method == LOWER_BOUND and self.timeline.points((queue, n)) < 2):
                worst = est.seconds if worst is None else max(worst, est.seconds)
        return worst

    def emit_dead_letters(self, out: SnapshotBuilder, state: ClusterState, letters: dict, now: float, deadline: float) -> None:
        dlqs = sorted(n for n, info in letters.items() if info.kind == DLQ)
        if self.options.dlq_sampling.enabled and dlqs:
            self.sample_dead_letters(out, dlqs, deadline)
        for name, info in sorted(letters.items()):
            topic = state.topics[name]
            parts = topic.partitions.values()
            subs = [s for s in topic.subscription_names() if matches(self.options.subscriptions, s)]
            backlogs = [sum(p.subscriptions[s].backlog for p in parts if s in p.subscriptions) for s in subs]
            produced = [p.produced for p in parts if p.produced is not None]
            # With no subscription nothing removes dead letters but retention: count what arrived.
            waiting = max(backlogs) if backlogs else (sum(produced) if produced else None)
            if info.kind != DLQ:
                if waiting is not None:
                    out.add("mqwatch_retry_messages", waiting, queue=name, source=info.source)
                continue
            labels = {"dlq": name, "source": info.source, "consumer": info.consumer or None}
            if waiting is not None:
                out.add("mqwatch_dlq_messages", waiting, **labels)
            before = self.arrivals.total(name)
            if self._observe_produced(self.arrivals, name, topic.partitions.items()):
                total = self.arrivals.total(name)
                if before is not None and total > before:
                    self._dlq_last_arrival[name] = now  # within one interval of the real arrival
                out.add("mqwatch_dlq_messages_total", total, **labels)
            newest = max(self._dlq_last_arrival.get(name, 0.0),
                         self._sampler.newest_publish.get(name, 0.0) if self._sampler else 0.0)
            if newest:
                out.add("mqwatch_dlq_last_message_timestamp_seconds", newest, **labels)
            if self._sampler is not None:
                for reason, n in self._sampler.reasons.top(name).items():
                    out.add("mqwatch_dlq_reason_messages", n, dlq=name, reason=reason)

    def sample_dead_letters(self, out: SnapshotBuilder, dlqs: list[str], deadline: float) -> None:
        from mqwatch.checks.pulsar.sampler import DeadLetterSampler

        if self._sampler is None:
            self._sampler = DeadLetterSampler(self.options.dlq_sampling.reason_property, self.options.dlq_sampling.max_messages,
                                              self.options.reasons)
        for dlq in dlqs:
            if time.monotonic() >= deadline:
                out.error("timeout", "DLQ sampling stopped at the collection deadline")
                return
            try:
                self._sampler.sample(self.binary(), dlq, deadline)
            except Exception as e:
                out.error("dlq_sampling", f"reading dead letters of {dlq}: {e}")

    def run_canary(self, out: SnapshotBuilder, deadline: float) -> None:
        from mqwatch.checks.pulsar.canary import STAGES, Canary

        if self._canary is None:
            self._canary = Canary(self.options.canary.topic, self.options.canary.lost_after)
        left = deadline - time.monotonic()
        try:
            client = self.binary()
            failure = self._canary.run(client, max(0.05, min(self.options.canary.timeout, left)))
        except Exception as e:
            failure = self._canary._fail("produce", f"canary cannot connect to {self.options.service_url}: {e}")
        if failure is not None:
            out.error("canary_" + failure[0], failure[1])
        out.add("mqwatch_canary_roundtrip_seconds", self._canary.histogram())
        for stage in STAGES:
            out.add("mqwatch_canary_failures_total", self._canary.failures[stage], stage=stage)
        emit_sequence(out, self._canary.sequence_counts())

    @staticmethod
    def _observe_produced(counters: Counters, key: str, parts) -> bool:
        """Feeds every (partition, broker) published counter seen this cycle; False when none was."""
        seen = False
        for n, p in parts:
            for broker, value in p.produced_counters().items():
                counters.observe(key, value, upstream=(n, broker))
                seen = True
        return seen

    def _prune(self, state: ClusterState, dlqs: list[str]) -> None:
        """Forget vanished topics and subscriptions so state does not grow forever."""
        self.status.retain((n, s) for n, t in state.topics.items() for s in t.subscription_names())
        subs = [(n, s) for n, t in state.topics.items() for s in t.subscription_names()]
        self.flow.retain(subs)
        self.expired.retain(subs)
        self.delivered.retain(subs)
        partitions = {(n, p) for n, t in state.topics.items() for p in t.partitions}
        self.timeline.retain(partitions)
        for key in [k for k in self._last_produced if k not in partitions]:
            del self._last_produced[key]
        subscriptions = {(n, s) for n, t in state.topics.items() for s in t.subscription_names()}
        for key in [k for k in self._positions if k[:2] not in subscriptions]:
            del self._positions[key]
        self.arrivals.retain(dlqs)
        self.produced.retain(state.topics)
        for d in list(self._dlq_last_arrival):
            if d not in dlqs:
                del self._dlq_last_arrival[d]
        if self._sampler is not None:
            self._sampler.retain(dlqs)
