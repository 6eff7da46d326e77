"""The Kafka check: turns one cycle's ClusterView into the metric contract."""

from __future__ import annotations

import time

from mqwatch.agent.check import Check
from mqwatch.agent.counters import REBASE, Counters
from mqwatch.agent.canary import STAGES, emit_sequence
from mqwatch.agent.flow import FlowTracker
from mqwatch.agent.schema import matches
from mqwatch.agent.snapshot import SnapshotBuilder
from mqwatch.agent.status import STATUSES, StatusTracker
from mqwatch.checks.kafka.canary import Canary
from mqwatch.checks.kafka.client import (GROUP_STATES, ClusterView, GroupInfo, KafkaClient, ViewListener, base_config,
                                         librdkafka_log)
from mqwatch.checks.kafka.clientlog import ClientLog
from mqwatch.checks.kafka.config import SCHEMA
from mqwatch.checks.kafka.dlq import DlqTracker
from mqwatch.checks.kafka.metrics import ERROR_REASONS, METRICS
from mqwatch.checks.kafka.readerprocess import IsolatedReader
from mqwatch.checks.kafka.retention import TopicRetention, headroom
from mqwatch.checks.kafka.timelag import Dating, TimeLag, TimeLagResult, lag_seconds

# Group states in which the broker says members are there (tansu reports no member list).
ACTIVE_STATES = ("Stable", "PreparingRebalance", "CompletingRebalance")


class KafkaCheck(Check):
    kind = "kafka"
    config_schema = SCHEMA
    metrics = METRICS
    error_reasons = ERROR_REASONS

    def __init__(self, name, options, timeout):
        super().__init__(name, options, timeout)
        self._client: KafkaClient | None = None
        self._reader: IsolatedReader | None = None
        self._canary: Canary | None = None
        self.status = StatusTracker(options.status_window, options.allowed_lag)
        self._status_keys: dict = {}  # group -> (group, topic) keys observed last time
        self._status_keys_now: dict = {}  # and this cycle, so far
        self.time_lag = TimeLag(options.time_lag, options.time_lag_fetches, options.fetch_timeout)
        self.dlq = DlqTracker(options.dlq, options.reasons)
        self.flow = FlowTracker(options.status_window)
        self.retention = TopicRetention(options.retention_refresh)
        self.produced = Counters()  # topic <- each partition's end offset
        self.lost = Counters()  # (group, topic) <- each partition's gap below the log start offset
        self.client_log = ClientLog(librdkafka_log)  # shared by every librdkafka client of this check
        self._collected = False  # a first collection has no end-offset history: it reads records
        self._ids: dict = {}  # partition ids tuple -> the one shared object (partition_ids), last cycle's
        self._ids_now: dict = {}  # and this cycle's

    def base_config(self) -> dict:
        o = self.options
        return base_config(list(o.bootstrap_servers), dict(o.client), self.timeout, o.tls, self.client_log)

    def client(self) -> KafkaClient:
        if self._client is None:  # created lazily so a bad setting fails a collection, not the agent
            self._client = KafkaClient(self.base_config(), self.timeout)
        return self._client

    def reader(self) -> IsolatedReader:
        if self._reader is None:  # in a child process: librdkafka can crash on a deleted topic
            self._reader = IsolatedReader(self.base_config())
        return self._reader

    def close(self) -> None:
        if self._canary is not None:
            self._canary.stop()
            self._canary = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._client is not None:
            self._client.close()
            self._client = None
        self.client_log.flush(everything=True)

    def partition_ids(self, parts) -> tuple:
        """The sorted ids of `parts`, as one shared tuple per distinct set. Status windows and flow
        positions keep each (group, topic)'s ids across cycles: at 10k partitions x 50 groups they
        held 2,000 tuples of 100 ids (1.6 MB) with one distinct value. Sets unused for a cycle
        are forgotten."""
        ids = tuple(sorted(parts))
        shared = self._ids_now.get(ids)
        if shared is None:
            shared = self._ids_now[ids] = self._ids.get(ids, ids)
        return shared

    def collect(self, out: SnapshotBuilder) -> None:
        self._ids, self._ids_now = self._ids_now, {}
        self._status_keys_now = {}  # (what a failed collection left is not this cycle's)
        deadline = time.monotonic() + self.timeout * 0.9
        first = self.shard.first  # cluster-wide series and the canary: shard 0 only
        if first and self.options.canary.enabled and self._canary is None:
            self._canary = Canary(self.options.canary, self.base_config())
            self._canary.start()
        if not self._collected and self.options.time_lag != "off":
            # Nothing dates a committed offset yet but its record: start the reader's child
            # now, so that its start-up overlaps the offset requests (readerprocess.py).
            self.reader().start()
        self._collected = True
        cycle = _Cycle(self, out, deadline)
        try:
            view = self.client().fetch_view(
                group_filter=lambda g: matches(self.options.groups, g),
                topic_filter=lambda t: matches(self.options.topics, t),
                shard=self.shard, listener=cycle,
            )
            for reason, message in view.errors:
                out.error(reason, message)
            if first:
                self.emit_brokers(out, view)
            self.emit_groups(out, view)
            cycle.finish()
        except BaseException:
            cycle.abandon()  # its record reads must not outlive a failed collection
            raise
        if self.options.dlq.enabled:
            self.emit_dlqs(out, view, deadline)
        if self._canary is not None:
            self.emit_canary(out)

    def emit_brokers(self, out: SnapshotBuilder, view: ClusterView) -> None:
        """Cluster-wide: brokers, controller, and every topic's replication health from metadata."""
        out.add("mqwatch_brokers", view.brokers)
        out.add("mqwatch_kafka_controller_id", view.controller_id)
        for topic, (under, offline) in view.health.items():
            out.add("mqwatch_kafka_under_replicated_partitions", under, queue=topic)
            out.add("mqwatch_kafka_offline_partitions", offline, queue=topic)

    def emit_topics(self, out: SnapshotBuilder, view: ClusterView) -> None:
        for topic, parts in view.topics.items():
            out.add("mqwatch_kafka_topic_partitions", len(parts), queue=topic)
            ends = [view.end_offsets.get((topic, p)) for p in parts]
            if parts and all(e is not None for e in ends):
                for p, end in zip(parts, ends):
                    self.produced.observe(topic, end, upstream=p)
                out.add("mqwatch_queue_produced_total", self.produced.total(topic), queue=topic)
                size = retained(view, topic)
                if size is not None:
                    out.add("mqwatch_queue_messages", size, queue=topic)

    def emit_groups(self, out: SnapshotBuilder, view: ClusterView) -> None:
        for gid, g in view.groups.items():
            if not self.shard.owns(gid):  # every shard knows every group's state; one exports it
                continue
            out.add("mqwatch_consumer_members", g.members, consumer=gid)
            for state in GROUP_STATES:
                out.add("mqwatch_consumer_state", 1 if g.state == state else 0, consumer=gid, state=state)

    def emit_lag(self, out: SnapshotBuilder, gid: str, topics: dict) -> None:
        """One group's lag in messages (topics: topic -> partition -> lag)."""
        per_partition = self.options.granularity == "partition"
        for topic, parts in topics.items():
            out.add("mqwatch_consumer_lag_messages", sum(parts.values()), queue=topic, consumer=gid)
            if per_partition:
                for p, lag in parts.items():
                    out.add("mqwatch_partition_lag_messages", lag, queue=topic, consumer=gid, partition=p)

    def emit_status(self, out: SnapshotBuilder, gid: str, g: GroupInfo, topics: dict, markers: set) -> None:
        """One group's status per topic, every partition judged over the window (agent/status.py);
        a partition whose lag is only transaction markers (`markers`, TimeLagResult.nothing_to_read)
        counts as caught up. Its keys go to _status_keys_now, for retain_status."""
        per_partition = self.options.granularity == "partition"
        if g.offsets is None:  # offsets unknown this cycle: keep its windows as they are
            self._status_keys_now[gid] = self._status_keys.get(gid, set())
            return
        active = g.members > 0 or g.state in ACTIVE_STATES
        keys = self._status_keys_now[gid] = set()
        for topic, parts in topics.items():
            ids = self.partition_ids(parts)
            offsets = [g.offsets[(topic, p)] for p in ids]
            quiet = [(topic, p, c) in markers for p, c in zip(ids, offsets)] if markers else None
            verdict = self.status.observe((gid, topic), offsets, [parts[p] for p in ids], active, ids, quiet)
            keys.add((gid, topic))
            for st in STATUSES:
                out.add("mqwatch_consumer_status", 1 if st == verdict.status else 0, queue=topic, consumer=gid, status=st)
            if per_partition:
                for p, st in zip(ids, verdict.partitions):
                    out.add("mqwatch_partition_status", 1, queue=topic, consumer=gid, partition=p, status=st)

    def retain_status(self, view: ClusterView) -> None:
        """After every group's emit_status: forget the windows of consumers that are gone
        (a group whose status was not judged this cycle keeps its keys)."""
        keys = self._status_keys_now
        for gid in view.groups:
            if gid not in keys and gid in self._status_keys:
                keys[gid] = self._status_keys[gid]
        self._status_keys, self._status_keys_now = keys, {}
        self.status.retain(set().union(*keys.values()) if keys else ())

    def emit_group_flow(self, out: SnapshotBuilder, view: ClusterView, gid: str, topics: dict, starts: dict) -> list:
        """Consumed, reprocessed and lost messages and the drain ETA per topic of one group
        (agent/flow.py); returns its (group, topic) keys. starts: log_starts(view)."""
        now, keys = view.observed_at, []
        offsets = view.groups[gid].offsets
        for topic, parts in topics.items():
            key = (gid, topic)
            keys.append(key)
            ids = self.partition_ids(parts)
            committed = tuple(offsets[(topic, p)] for p in ids)
            flow = self.flow.observe(key, now, ids, committed, sum(parts.values()))
            labels = {"queue": topic, "consumer": gid}
            out.add("mqwatch_consumer_consumed_total", flow.consumed, **labels)
            out.add("mqwatch_consumer_reprocessed_messages_total", flow.reprocessed, **labels)
            if flow.drain_seconds is not None:
                out.add("mqwatch_consumer_drain_seconds", flow.drain_seconds, **labels)
            lost = self.observe_lost(key, ids, committed, view.start_offsets, starts.get(topic, 0))
            out.add("mqwatch_consumer_lost_messages_total", lost, **labels)
        return keys

    def retain_flow(self, view: ClusterView, live: list) -> None:
        """Forget the flow of (group, topic) keys not in `live`, but for groups whose offsets are unknown this cycle."""
        unknown = {k for k in self.flow.consumed.keys() if view.groups.get(k[0]) is not None
                   and view.groups[k[0]].offsets is None}  # offsets unknown this cycle: keep their state
        self.flow.retain(live + list(unknown))
        self.lost.retain(live + list(unknown))
        self.produced.retain(view.topics)

    def observe_lost(self, key, ids: tuple, committed: tuple, start_offsets: dict, highest_start: int) -> float:
        """Messages retention (or DeleteRecords) removed below the group's committed offset.

        The gap (log start - committed) of a partition is what the group can no longer read;
        it grows as retention deletes more, and shrinks to nothing once the group jumps
        forward (auto.offset.reset), which must not take anything back: each partition's gap
        is an upstream series whose increases are lost messages (REBASE: a shrink adds 0).
        Partitions are tracked only once the group had a gap somewhere, so a healthy
        cluster's 100k offsets cost nothing here: with no gap tracked yet, a topic whose highest
        log start offset (`highest_start`) is at or below every committed offset is skipped.
        """
        topic = key[1]
        tracked = self.lost.total(key) is not None
        if not tracked and (not committed or highest_start <= min(committed)):
            return 0.0
        for p, c in zip(ids, committed):
            start = start_offsets.get((topic, p))
            if start is None or c < 0:
                continue
            gap = max(0, start - c)
            if gap > 0 or tracked:
                self.lost.observe(key, gap, upstream=p, on_drop=REBASE)
                tracked = True
        return self.lost.total(key) or 0.0

    def emit_time_lag(self, out: SnapshotBuilder, gid: str, topics: dict, offsets: dict, dates: TimeLagResult) -> dict:
        """One group's lag in seconds per topic (and partition); returns (group, topic) -> the worst partition's."""
        per_partition = self.options.granularity == "partition"
        worst, partitions = lag_seconds(dates.seconds, {gid: topics}, lambda _: offsets, per_partition)
        for (_, topic), seconds in worst.items():
            out.add("mqwatch_consumer_lag_seconds", seconds, queue=topic, consumer=gid)
        for (_, topic, p), seconds in partitions.items():
            out.add("mqwatch_partition_lag_seconds", seconds, queue=topic, consumer=gid, partition=p)
        return worst

    def emit_headroom(self, out: SnapshotBuilder, worst: dict, deadline: float) -> None:
        """Retention minus the age of each group's oldest unconsumed record (checks/kafka/retention.py)."""
        problem = self.retention.update(self.client().admin, {t for _, t in worst},
                                        min(self.options.fetch_timeout, deadline - time.monotonic()))
        if problem:
            out.error("retention", problem)
        for (gid, topic), seconds in worst.items():
            room = headroom(self.retention.seconds.get(topic), seconds)
            if room is not None:
                out.add("mqwatch_consumer_retention_headroom_seconds", room, queue=topic, consumer=gid)

    def emit_dlqs(self, out: SnapshotBuilder, view: ClusterView, deadline: float) -> None:
        cycle = self.dlq.find(view.topics)
        time_left = min(self.options.fetch_timeout, deadline - time.monotonic())
        self.dlq.update(cycle, view, self.reader(), time_left)
        for reason, message in cycle.problems:
            out.error(reason, message)
        for retry, source in cycle.retries.items():
            size = retained(view, retry)
            if size is not None:
                out.add("mqwatch_retry_messages", size, queue=retry, source=source)
        for dlq, source in cycle.dlqs.items():
            size = retained(view, dlq)
            if size is not None:
                out.add("mqwatch_dlq_messages", size, dlq=dlq, source=source)
            total = self.dlq.arrivals.total(dlq)
            if total is not None:
                out.add("mqwatch_dlq_messages_total", total, dlq=dlq, source=source)
            if dlq in self.dlq.last_timestamp:
                out.add("mqwatch_dlq_last_message_timestamp_seconds", self.dlq.last_timestamp[dlq], dlq=dlq, source=source)
            for reason, n in self.dlq.reasons.top(dlq).items():
                out.add("mqwatch_dlq_reason_messages", n, dlq=dlq, reason=reason)

    def emit_canary(self, out: SnapshotBuilder) -> None:
        out.add("mqwatch_canary_roundtrip_seconds", self._canary.stats.histogram())
        failures = self._canary.stats.failure_counts()
        for stage in STAGES:
            out.add("mqwatch_canary_failures_total", failures[stage], stage=stage)
        emit_sequence(out, self._canary.sequence_counts())


def retained(view: ClusterView, topic: str) -> int | None:
    """Messages retained in a topic, or None if an offset of one of its partitions is unknown."""
    total = 0
    for p in view.topics[topic]:
        end, start = view.end_offsets.get((topic, p)), view.start_offsets.get((topic, p))
        if end is None or start is None:
            return None
        total += max(0, end - start)
    return total


def log_starts(view: ClusterView) -> dict:
    """topic -> the highest log start offset among its partitions (those known this cycle)."""
    highest: dict = {}
    for (topic, _), start in view.start_offsets.items():
        if start > highest.get(topic, 0):
            highest[topic] = start
    return highest


def group_lags(offsets: dict | None, ends: dict, known: dict) -> dict:
    """topic -> partition -> lag in messages of one group, for committed partitions with a known
    end offset. A topic the group never committed on gets no entry, so it produces no series."""
    if not offsets:
        return {}
    # 2,000 committed offsets per group at 10k partitions x 50 groups: one dict lookup per offset,
    # the topic's dict looked up only when the topic changes (offsets come grouped by topic).
    topics: dict = {}
    topic, parts = None, None
    for key, committed in offsets.items():
        end = ends.get(key)
        if end is None:
            continue
        if key[0] != topic:
            topic = key[0]
            parts = topics.get(topic)
            if parts is None:
                parts = topics[topic] = {} if topic in known else None
        if parts is not None:
            parts[key[1]] = end - committed if end > committed else 0
    return {t: ps for t, ps in topics.items() if ps is not None}


class _Cycle(ViewListener):
    """One collection's work per group, done as each group's reply comes in (client.py): its lag,
    flow, and (once its lagging offsets are dated) lag in seconds and status, while the broker
    still answers the next groups. At 10k partitions x 50 groups that was 0.1-0.15 s after the
    last reply, against the raw client's 0.05 s (benchmarks/README.md)."""

    def __init__(self, check: KafkaCheck, out: SnapshotBuilder, deadline: float):
        self.check, self.out, self.deadline = check, out, deadline
        self.view: ClusterView | None = None
        self.lags: dict = {}  # group -> topic -> partition -> lag, of the groups with lags
        self.dating: Dating | None = None
        self.starts: dict = {}  # log_starts(view)
        self.flow_keys: list = []  # (group, topic) of every flow series
        self.worst: dict = {}  # (group, topic) -> lag in seconds of its worst partition
        # groups whose lag in seconds and status wait for dates -> their lagging keys not yet settled
        self.waiting: dict = {}
        self.shared_keys: dict = {}  # (topic, partition, committed) -> itself: one tuple per key for all groups
        self.rounds_seen = -1  # dating.rounds when the waiting groups were last looked at

    def offsets_known(self, view: ClusterView) -> None:
        check = self.check
        self.view = view
        check.time_lag.observe_ends(view.end_offsets, view.observed_at)
        if check.options.time_lag != "off":
            self.dating = check.time_lag.begin(view.end_offsets, view.observed_at, check.reader(),
                                               self.deadline - time.monotonic())
            self.dating.read_ahead()
        self.starts = log_starts(view)
        check.emit_topics(self.out, view)

    def group_known(self, gid: str) -> None:
        check, view = self.check, self.view
        g = view.groups[gid]
        topics = group_lags(g.offsets, view.end_offsets, view.topics)
        if topics:
            self.lags[gid] = topics
            check.emit_lag(self.out, gid, topics)
            self.flow_keys += check.emit_group_flow(self.out, view, gid, topics, self.starts)
        if self.dating is None:
            self.judge(gid)
            return
        lagging, shared = {}, self.shared_keys
        for topic, parts in topics.items():
            for p, lag in parts.items():
                if lag > 0:
                    key = (topic, p, g.offsets[(topic, p)])
                    lagging[shared.setdefault(key, key)] = lag
        self.dating.add(lagging)
        self.waiting[gid] = list(lagging)
        self.judge_dated(force_check=gid)

    def wake(self):
        return self.dating.next_round if self.dating is not None and self.waiting else None

    def progress(self) -> None:
        if self.dating is not None and self.waiting:
            self.judge_dated()

    def judge_dated(self, force_check: str | None = None) -> None:
        """Judges the waiting groups whose lagging keys are all dated now; a group's keys are
        looked at again only after a read round ended (or when it just came in)."""
        rounds = self.dating.rounds
        if rounds == self.rounds_seen and force_check is None:
            return
        recheck = list(self.waiting) if rounds != self.rounds_seen else [force_check]
        self.rounds_seen = rounds
        for gid in recheck:
            keys = self.waiting[gid] = self.dating.settle(self.waiting[gid])
            if not keys:
                del self.waiting[gid]
                self.judge(gid)

    def judge(self, gid: str) -> None:
        """A group's lag in seconds and status, its dates final."""
        check, g = self.check, self.view.groups[gid]
        topics = self.lags.get(gid, {})
        markers: set = set()
        if self.dating is not None and topics:
            dates = self.dating.result
            self.worst.update(check.emit_time_lag(self.out, gid, topics, g.offsets, dates))
            markers = dates.nothing_to_read
        check.emit_status(self.out, gid, g, topics, markers)

    def abandon(self) -> None:
        """The collection failed midway: no more reads for it."""
        if self.dating is not None:
            self.dating.close()

    def finish(self) -> None:
        """After the last group: what is left of the dating, and the cycle's bookkeeping."""
        check, out, view = self.check, self.out, self.view
        check.retain_flow(view, self.flow_keys)
        if self.dating is not None:
            # Every topic with a lag series: a superset of those that get a lag in seconds (the
            # headroom's), asked before the last reads are waited for.
            check.retention.request(check.client().admin, {t for topics in self.lags.values() for t in topics},
                                    min(check.options.fetch_timeout, self.deadline - time.monotonic()))
            result = self.dating.finish()
            for gid in list(self.waiting):
                del self.waiting[gid]
                self.judge(gid)
            if result.errors:
                out.error("time_lag", f"reading records to date committed offsets failed for {len(result.errors)} "
                                      f"partition(s), e.g. {result.errors[0]}")
            elif result.unread:
                out.error("time_lag", f"{result.unread} partition(s) did not answer within fetch_timeout "
                                      f"{check.options.fetch_timeout:g}s (or the check's timeout); their lag in "
                                      f"seconds is an estimate or missing this cycle")
            check.emit_headroom(out, self.worst, self.deadline)
        check.retain_status(view)
