"""The Kafka I/O layer: one cycle's view of the cluster in a constant number of requests.

Per cycle: one metadata request and with it one ListGroups, one DescribeGroups batch (librdkafka
groups it by coordinator), the committed offsets of every group issued concurrently
(librdkafka's admin API takes one group per OffsetFetch, so they are pipelined rather
than sent one after another), and ListOffsets for earliest and latest offsets of all
partitions (librdkafka groups those by leader), in batches of OFFSETS_PER_REQUEST
partitions. Nothing here is per partition or per group in sequence.

The end and start offsets are read first, then every group's requests go out at once. The
groups' offsets are most of a large cycle (at 10k partitions x 50 groups, 100k committed
offsets that tansu answers one group after another in about 0.8 s); sent first, they had the
ListOffsets queue behind them, so the end offsets came last and every series was built after
the last reply. With the end offsets known, each group's reply is handed to the caller as it
arrives (`listener`), and the check turns it into series while the broker answers the next
groups. The broker's work is the same in either order. (A second connection for the
ListOffsets, answered alongside the groups, measured no faster on tansu, whose two cores it
shared, and cost the agent ~2 MB for a second librdkafka client.)

Sharded (`--shard I/N`), a replica reads the end and start offsets of the partitions of the
topics it owns only, and asks each group's committed offsets for the partitions of its own
topics that group commits on (OffsetFetch with a partition list; grouptopics.py); the
metadata, ListGroups and DescribeGroups requests are small and every replica sends them
(each needs every group's state to judge its consumers on its own topics).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec, _AdminClientImpl

from mqwatch.agent import tls as tlsconf
from mqwatch.agent.check import CheckError
from mqwatch.agent.sharding import WHOLE, Shard
from mqwatch.checks.kafka.clientlog import ClientLog
from mqwatch.checks.kafka.grouptopics import GroupTopics

# The names the Kafka broker itself uses for group states (kafka-consumer-groups.sh prints these).
GROUP_STATES = ("Stable", "PreparingRebalance", "CompletingRebalance", "Empty", "Dead", "Unknown")
_STATE_NAMES = {
    "STABLE": "Stable", "PREPARING_REBALANCING": "PreparingRebalance", "COMPLETING_REBALANCING": "CompletingRebalance",
    "EMPTY": "Empty", "DEAD": "Dead", "UNKNOWN": "Unknown",
}

librdkafka_log = logging.getLogger("mqwatch.librdkafka")
# A failing connection is retried by librdkafka in the background; metadata is asked in
# slices this long so a TLS or SASL failure it reports ends the collection at once.
METADATA_SLICE = 0.5

# Client CPU of one AdminClient.list_offsets call grows with the square of its partitions
# (measured with confluent-kafka 2.16: 10k partitions 0.8 s, 30k 4.7 s; see
# docs/benchmarks.md); batches of this size keep it linear (30k in 0.5 s) for a few more
# pipelined requests.
OFFSETS_PER_REQUEST = 1000
# Batches in flight at once, to bound what is held (each reply is read as it settles).
OFFSET_BATCHES_IN_FLIGHT = 4
_LATEST, _EARLIEST = int(OffsetSpec.latest()._value), int(OffsetSpec.earliest()._value)


def list_offsets_batch(admin: AdminClient, keys, spec: int, timeout: float) -> Future:
    """ListOffsets of (topic, partition) keys at `spec` (_LATEST or _EARLIEST): ONE Future for the
    whole reply, {TopicPartition: ListOffsetsResultInfo | KafkaError}.

    AdminClient.list_offsets wraps this same call of the C client in a Future per partition
    (with its Condition, RLock and callbacks, set one by one from librdkafka's thread) after
    checking every key in Python: at 10k partitions, earliest and latest, that was 20k
    Futures, ~0.13 s of CPU per cycle and many of the collection's garbage-collector passes
    (gc generation 2 ran 5 times in one fresh 10k collection; now 3). The C method has kept this signature
    since confluent-kafka 2.3 (pyproject allows >=2.4,<3); tests/kafka exercise it on tansu.
    """
    f: Future = Future()
    f.set_running_or_notify_cancel()
    _AdminClientImpl.list_offsets(admin, [TopicPartition(t, p, spec) for t, p in keys], f, request_timeout=timeout)
    return f


@dataclass
class PartitionInfo:
    leader: int
    replicas: int
    in_sync: int


@dataclass
class GroupInfo:
    state: str = "Unknown"
    members: int = 0
    offsets: dict = field(default_factory=dict)  # (topic, partition) -> committed offset


@dataclass
class ClusterView:
    """What one cycle learned; the check turns it into metrics."""

    brokers: int
    controller_id: int
    topics: dict  # topic -> {partition: PartitionInfo}, the topics this shard owns
    groups: dict  # group id -> GroupInfo
    end_offsets: dict  # (topic, partition) -> offset
    start_offsets: dict  # (topic, partition) -> offset
    observed_at: float  # when the end offsets were read (unix time)
    errors: list = field(default_factory=list)  # (reason, message) partial failures
    # topic -> (under-replicated, offline) partitions of every topic, owned or not: the metadata
    # every shard reads anyway; shard 0 exports it (cluster-wide series).
    health: dict = field(default_factory=dict)


def _error_reason(err: KafkaError | None) -> str:
    if err is None:
        return "broker_error"
    code = err.code()
    if code in (KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT):
        return "timeout"
    if code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError.NETWORK_EXCEPTION):
        return "connection"
    if code == KafkaError._SSL:
        return "tls"
    if code in (KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._AUTHENTICATION):
        return "auth"
    if code in (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED,
                KafkaError.CLUSTER_AUTHORIZATION_FAILED):
        return "permission"
    return "broker_error"


def _kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def tls_config(tls, client_config: dict) -> dict:
    """The check's `tls:` block as librdkafka properties; `client:` keys given explicitly win."""
    if tls is None or not tlsconf.configured(tls):
        return {}
    sasl = any(k.startswith("sasl.") for k in client_config)
    conf = {"security.protocol": "sasl_ssl" if sasl else "ssl"}
    if tls.ca_file:
        conf["ssl.ca.location"] = tls.ca_file
    if tls.cert_file:
        conf["ssl.certificate.location"], conf["ssl.key.location"] = tls.cert_file, tls.key_file
    if tls.key_password:
        conf["ssl.key.password"] = tls.key_password
    if tls.insecure_skip_verify:
        conf["enable.ssl.certificate.verification"] = False
        conf["ssl.endpoint.identification.algorithm"] = "none"
    return conf


def base_config(bootstrap_servers: list[str], client_config: dict, timeout: float, tls=None,
                log: ClientLog | None = None) -> dict:
    """librdkafka settings every client of a check shares (admin, record reader, canary)."""
    log = log or ClientLog(librdkafka_log)
    return {
        **tls_config(tls, client_config),
        **{k: v for k, v in client_config.items()},
        "bootstrap.servers": ",".join(bootstrap_servers),
        "client.id": client_config.get("client.id", "mqwatch"),
        "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
        "logger": log,
        "error_cb": log.error_cb,
    }


class KafkaClient:
    def __init__(self, conf: dict, timeout: float):
        self.timeout = timeout
        self.log: ClientLog = conf["logger"]
        self._plaintext = str(conf.get("security.protocol", "plaintext")).lower() in ("plaintext", "sasl_plaintext")
        self._client_cert = bool(conf.get("ssl.certificate.location") or conf.get("ssl.certificate.pem")
                                 or conf.get("ssl.keystore.location"))
        self.group_topics = GroupTopics()  # sharded only: what each group commits on
        try:
            self.admin = AdminClient(conf)
        except KafkaException as e:
            raise CheckError("config", f"invalid client settings: {e.args[0].str() if _kafka_error(e) else e}") from None

    def close(self) -> None:
        self.admin.poll(0)
        self.log.flush(everything=True)

    def fetch_view(self, group_filter, topic_filter, shard: Shard = WHOLE, listener: ViewListener | None = None) -> ClusterView:
        """One cycle's reads. Raises CheckError when the cluster can't be reached at all.

        listener: told of the view as soon as the end and start offsets are in, then of each
        group once its offsets and description are (while the broker answers the others)."""
        started = time.monotonic()
        try:
            view = self._fetch_view(group_filter, topic_filter, started, shard, listener or ViewListener())
        except CheckError as e:
            raise self._explained(e) from None
        finally:
            self.admin.poll(0)  # serve librdkafka's log lines and error callbacks every cycle
            self.log.flush()
        self.log.clear()
        return view

    def _cause(self) -> tuple[str, str] | None:
        """(reason, text) of why the brokers cannot be used, from what librdkafka said."""
        cause = self.log.cause()
        if cause is not None:
            reason, text = cause
            if reason == "tls" and not self._client_cert and "closed by peer" in text:
                # TLS 1.3: a broker that wants a client certificate hangs up after the handshake.
                text += (" (the broker closed the TLS connection: it probably requires a client certificate; "
                         "set tls.cert_file and tls.key_file)")
            return reason, text
        last = self.log.last_failure
        if self._plaintext and "closed by peer" in last and "APIVERSION_QUERY" in last:
            # A TLS listener drops a plaintext client's first request without a word.
            return "tls", (f"{last} (the broker hung up on the first request of a plaintext connection: it "
                           f"probably expects TLS; set tls: or client security.protocol)")
        return None

    def _explained(self, e: CheckError) -> CheckError:
        """The failure with librdkafka's reason for it (TLS, SASL, ACL) when it gave one."""
        self.admin.poll(0)
        cause = self._cause()
        if cause is None or e.reason in ("tls", "auth", "permission"):
            return e
        reason, text = cause
        return CheckError(reason, f"{e}: {text}")

    def _metadata(self, deadline: float):
        """list_topics in short slices, stopping early when librdkafka has said why it can't connect."""
        while True:
            left = deadline - time.monotonic()
            try:
                return self.admin.list_topics(timeout=max(0.1, min(METADATA_SLICE, left)))
            except KafkaException as e:
                err = _kafka_error(e)
                self.admin.poll(0)
                cause = self._cause()
                if left <= METADATA_SLICE or (cause and cause[0] in ("tls", "auth")):
                    raise CheckError(_error_reason(err), f"cannot fetch metadata: {err.str() if err else e}") from None

    def _fetch_view(self, group_filter, topic_filter, started: float, shard: Shard, listener: ViewListener) -> ClusterView:
        deadline = started + self.timeout * 0.9
        errors: list[tuple[str, str]] = []

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        # ListGroups travels with the metadata request.
        listing = self.admin.list_consumer_groups(request_timeout=remaining())
        md = self._metadata(deadline)
        topics, health = {}, {}
        for name, t in md.topics.items():
            if t.error is not None or not topic_filter(name):
                continue
            parts = {p.id: PartitionInfo(p.leader, len(p.replicas), len(p.isrs)) for p in t.partitions.values()}
            health[name] = (sum(p.in_sync < p.replicas for p in parts.values()), sum(p.leader < 0 for p in parts.values()))
            if shard.owns(name):
                topics[name] = parts

        brokers, controller_id = len(md.brokers), md.controller_id if md.controller_id is not None else -1
        del md  # 10k partitions' metadata objects are not needed past this point

        # One (topic, partition) key object per partition, shared by every group's offsets and
        # the end/start maps: 100k committed offsets then hold no key tuples or topic strings
        # of their own (about 10 MB less at 10k partitions x 50 groups).
        keys = {(t, p): (t, p) for t, parts in topics.items() for p in parts}
        # The end offsets first (module docstring), then every group's requests at once.
        end, start, observed_at = self._read_offsets(keys, remaining, errors)
        pending_groups = self._request_groups(listing, group_filter, remaining, errors, topics if shard.sharded else None)
        replies = _GroupReplies(pending_groups, keys, errors, listener, self.group_topics if shard.sharded else None)
        # replies owns the futures now: held here too, every group's reply (2,000 TopicPartition
        # objects each at 10k partitions) lived until the end of the cycle however early it was read.
        del pending_groups
        view = ClusterView(
            brokers=brokers, controller_id=controller_id,
            topics=topics, groups=replies.groups, end_offsets=end, start_offsets=start,
            observed_at=observed_at, errors=errors, health=health,
        )
        listener.offsets_known(view)
        replies.absorb_all(remaining)
        return view

    def _request_groups(self, listing_future, group_filter, remaining, errors, owned=None) -> tuple:
        """Take the group listing and send every describe and offset request; _GroupReplies reads
        the replies. `owned` (sharded): this shard's topics -> partitions; each group is asked
        for what self.group_topics plans (None: every offset it has)."""
        try:
            listing = listing_future.result(timeout=remaining())
        except KafkaException as e:
            err = _kafka_error(e)
            raise CheckError(_error_reason(err), f"cannot list consumer groups: {err.str() if err else e}") from None
        for err in listing.errors or ():
            errors.append(("list_groups", f"listing groups: {err}"))
        ids = sorted({g.group_id for g in listing.valid if group_filter(g.group_id)})
        if not ids:
            return ids, {}, {}
        describe = self.admin.describe_consumer_groups(ids, request_timeout=remaining())
        plan = dict.fromkeys(ids) if owned is None else self.group_topics.plan(ids, owned)
        offsets = {}
        for gid, partitions in plan.items():
            # in batches, as list_offsets: librdkafka's reply handling is quadratic in a request's size
            batches = [None] if partitions is None else \
                [partitions[i:i + OFFSETS_PER_REQUEST] for i in range(0, len(partitions), OFFSETS_PER_REQUEST)]
            offsets[gid] = [self.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(gid, b)],
                                                                   request_timeout=remaining())[gid]
                            for b in batches]
        return ids, describe, offsets

    def _read_offsets(self, keys, remaining, errors) -> tuple[dict, dict, float]:
        """End and start offsets of every partition: (end, start, time the end offsets were read).
        keys: {(topic, partition): the same tuple}, shared by the maps returned."""
        found: dict[str, dict] = {"end": {}, "start": {}}
        failed: dict[tuple[str, str], list] = {}  # (which, topic) -> [partitions, first error]
        in_flight: deque = deque()
        partitions = list(keys)

        def settle(which: str, batch: list, future: Future) -> None:
            out = found[which]
            try:
                answers = future.result(timeout=remaining())
            except Exception as e:  # the whole request failed or timed out
                for t, _ in batch:
                    failed.setdefault((which, t), [0, _describe_exc(e)])[0] += 1
                return
            for tp, answer in answers.items():
                if isinstance(answer, KafkaError):
                    failed.setdefault((which, tp.topic), [0, answer.str()])[0] += 1
                else:
                    out[keys[(tp.topic, tp.partition)]] = answer.offset

        for i in range(0, len(partitions), OFFSETS_PER_REQUEST):
            batch = partitions[i:i + OFFSETS_PER_REQUEST]
            for which, spec in (("end", _LATEST), ("start", _EARLIEST)):
                in_flight.append((which, batch, list_offsets_batch(self.admin, batch, spec, remaining())))
            while len(in_flight) > OFFSET_BATCHES_IN_FLIGHT:
                settle(*in_flight.popleft())
        while in_flight:
            settle(*in_flight.popleft())
        observed_at = time.time()
        for (which, topic), (n, first_error) in failed.items():  # e.g. a topic deleted during collection
            errors.append(("partition_offsets", f"topic {topic}: {which} offsets of {n} partition(s) unavailable: {first_error}"))
        return found["end"], found["start"], observed_at


class ViewListener:
    """What fetch_view tells as the cycle's replies come in (the check's per-group work); does nothing."""

    def offsets_known(self, view: ClusterView) -> None:
        """The end and start offsets are in: `view` is complete but for its groups' GroupInfo,
        which fill in as their replies come."""

    def group_known(self, gid: str) -> None:
        """view.groups[gid] is final: its offsets (None if they failed) and its description."""

    def wake(self) -> Future | None:
        """A future done when the listener may have more to do (progress()) while replies are awaited."""
        return None

    def progress(self) -> None:
        """Called after each wait for replies."""


class _GroupReplies:
    """Turns the groups' describe and offset replies into GroupInfo as they come in.

    A reply is read and dropped as soon as it is done, rather than all at the end: at 10k
    partitions x 50 groups the 100k TopicPartition objects of the offset replies otherwise
    all live at once (about 15 MB of a cycle's peak, and the fragmentation it leaves).
    """

    def __init__(self, pending: tuple, keys: dict, errors: list, listener: ViewListener,
                 group_topics: GroupTopics | None = None):
        ids, describe, offsets = pending
        self._describe, self._offsets = dict(describe), dict(offsets)  # offsets: group -> [futures]
        self.groups = {gid: GroupInfo() for gid in ids}
        self._keys, self._errors = keys, errors
        self._listener = listener  # told of each group once its offsets and description are in
        self._group_topics = group_topics  # sharded: keep only this shard's partitions, and learn

    def absorb_all(self, remaining) -> None:
        """Reads every group's reply as it comes in, and lets the listener go on when its wake()
        future is done; what is not in by the deadline is reported as timed out."""
        while True:
            # What is in already first: waiting for the oldest outstanding reply before reading
            # those left every reply that came in meanwhile unread until it arrived.
            self._absorb(lambda future: future.done())
            self._listener.progress()
            # The oldest outstanding describe and offsets requests only (replies come about in
            # the order asked; each pass reads every one that is in): waiting on all of them
            # each time cost groups x replies lock round trips (150 x 200 at 30k partitions).
            pending = [f for f in (self._oldest(self._describe.values()),
                                   self._oldest(f for fs in self._offsets.values() for f in fs)) if f is not None]
            if not pending:
                break
            wake = self._listener.wake()
            done, _ = wait(pending + ([wake] if wake is not None else []), timeout=remaining(), return_when=FIRST_COMPLETED)
            if not done:
                break
        self._absorb(lambda future: True)  # what is still not done is reported as timed out

    @staticmethod
    def _oldest(futures) -> Future | None:
        return next((f for f in futures if not f.done()), None)

    def _absorb(self, ready) -> None:
        described = [g for g, f in self._describe.items() if ready(f)]
        for gid in described:
            self._absorb_description(gid, self._describe.pop(gid))
        fetched = [g for g, fs in self._offsets.items() if all(ready(f) for f in fs)]
        for gid in fetched:
            self._absorb_offsets(gid, self._offsets.pop(gid))
        for gid in dict.fromkeys(described + fetched):
            if gid not in self._describe and gid not in self._offsets:
                self._listener.group_known(gid)

    def _absorb_description(self, gid, future) -> None:
        info = self.groups[gid]
        try:
            d = future.result(timeout=0)
            info.state = _STATE_NAMES.get(d.state.name, "Unknown")
            info.members = len(d.members or ())
        except Exception as e:
            self._errors.append((_partial_reason("describe_group", e), f"group {gid}: {_describe_exc(e)}"))

    def _absorb_offsets(self, gid, futures) -> None:
        info, keys, owned_only = self.groups[gid], self._keys, self._group_topics is not None
        try:
            for future in futures:
                for tp in future.result(timeout=0).topic_partitions or ():
                    if tp.error is None and tp.offset >= 0:
                        key = (tp.topic, tp.partition)
                        if owned_only and key not in keys:
                            continue  # another shard's topic (a whole fetch returns them all)
                        info.offsets[keys.get(key, key)] = tp.offset
        except Exception as e:
            self._errors.append((_partial_reason("group_offsets", e), f"group {gid}: {_describe_exc(e)}"))
            info.offsets = None  # unknown, not "no offsets": emit no lag for it this cycle
            return
        if owned_only:
            self._group_topics.learn(gid, info.offsets)


def _partial_reason(default: str, e: BaseException) -> str:
    """`permission` when the broker's ACLs refused the request (Describe on the group), else `default`."""
    return "permission" if _error_reason(_kafka_error(e)) == "permission" else default


def _describe_exc(e: BaseException) -> str:
    err = _kafka_error(e)
    if err is not None:
        return err.str()
    if type(e).__name__ == "TimeoutError" or "Timeout" in type(e).__name__:
        return "timed out"
    return f"{type(e).__name__}: {e}"
