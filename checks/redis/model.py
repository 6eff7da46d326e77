"""What one cycle read from Redis, in the terms of the metric contract (no I/O, no labels yet)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mqwatch.checks.redis.client import is_error

# The `framework` label of series read from keys no job framework owns (the `keys` patterns).
PLAIN = "plain"


@dataclass
class QueueStat:
    messages: int
    latency: float | None = None  # age of the oldest waiting job, when the framework records it


@dataclass
class PendingStat:
    messages: int
    oldest_seconds: float | None = None


@dataclass
class DelayedStat:
    messages: int
    overdue: int
    overdue_seconds: float  # how late the most overdue entry is; 0 when none is


@dataclass
class GroupStat:
    stream: str
    group: str
    members: int
    lag: int | None
    lag_seconds: float | None
    pending: int
    pending_oldest_seconds: float | None
    least_idle_seconds: float | None
    delivered: int = 0  # last-delivered-id as one comparable number, for the status window
    entries_read: int | None = None  # Redis 7: entries the group read, in entries-added's count
    unreadable: int | None = None  # entries trimmed before the group read them (Redis 7 lag only)
    max_deliveries: int | None = None  # highest XPENDING delivery count among the scanned pending entries
    redelivered: int | None = None  # scanned pending entries delivered more than once


@dataclass
class StreamStat:
    length: int
    entries_added: int | None  # Redis 7+; Redis 6 does not count additions


@dataclass
class DeadLetterStat:
    source: str  # "" when the entries of one DLQ come from several queues (Sidekiq's dead set)
    size: int
    by_source: dict | None = None  # source -> entries, for a DLQ that mixes queues
    newest_timestamp: float | None = None
    arrivals: int | None = None  # entries newer than the last one seen; None: only the size is known
    produced: int | None = None  # a stream's entries-added counter
    cursor: object = None  # where to continue counting arrivals next cycle
    sampled: list = field(default_factory=list)  # (source or None, reason) of arrivals read this cycle


# Dead-letter payloads (and RQ tracebacks once decompressed) larger than this are not parsed
# for reasons: Kafka's key of the same name and default. Configurable as max_payload_bytes.
DEFAULT_MAX_PAYLOAD = 65536


def oversized(raw, max_bytes: int) -> bool:
    return isinstance(raw, (bytes, bytearray, str)) and len(raw) > max_bytes


@dataclass
class View:
    """Keys start with the framework (sidekiq, rq, bullmq, celery, or PLAIN): four frameworks may
    each have a queue `default` in one database, and each is its own series."""

    queues: dict = field(default_factory=dict)  # (framework, name) -> QueueStat
    pending: dict = field(default_factory=dict)  # (framework, queue, consumer or None) -> PendingStat
    delayed: dict = field(default_factory=dict)  # (framework, name) -> DelayedStat
    streams: dict = field(default_factory=dict)  # name -> StreamStat (plain keys)
    groups: list = field(default_factory=list)  # GroupStat
    dlqs: dict = field(default_factory=dict)  # (framework, dlq name) -> DeadLetterStat
    jobs: dict = field(default_factory=dict)  # (framework, queue, state) -> jobs, in the framework's own terms
    paused: dict = field(default_factory=dict)  # (framework, queue) -> bool
    workers: dict = field(default_factory=dict)  # framework -> live worker processes
    max_deliveries: dict = field(default_factory=dict)  # (framework, queue) -> most executions of one retried job
    errors: list = field(default_factory=list)  # (reason, message)

    def error(self, reason: str, message: str) -> None:
        self.errors.append((reason, message))


def add_length(stat: QueueStat, view: View, what: str):
    """A reply handler adding a length reply (LLEN, ZCARD) to stat.messages.

    An error reply means the key changed type between the scan and the read: it is reported
    and the queue keeps what the other replies counted.
    """
    def on_reply(result):
        if is_error(result):
            view.error("key_changed", f"{what}: {result}")
        else:
            stat.messages += int(result)

    return on_reply
