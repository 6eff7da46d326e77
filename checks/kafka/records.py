"""Reads given offset ranges of many partitions at once, without joining any group.

One assign() covers every partition, so librdkafka sends one Fetch per leader broker for
all of them: the cost of a read is a constant number of round trips however many
partitions ask. The consumer never commits.

The consumer lives for one read only. A consumer kept across cycles remembers every topic
it was ever assigned and keeps refreshing their metadata; when such a topic is deleted,
librdkafka 2.16 crashed the whole process in its metadata cache (seen against tansu, in
tests/kafka/test_dlq.py's deleted-DLQ case). A new consumer per read costs one connection
setup per cycle and can't outlive a topic.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, KafkaException, TopicPartition

log = logging.getLogger("mqwatch.kafka.records")


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: float | None  # unix seconds, None when the broker has none
    headers: tuple  # ((name, bytes | None), ...)
    value: bytes | None


@dataclass
class ReadResult:
    records: dict  # (topic, partition) -> [Record] in offset order
    complete: set  # partitions whose whole range was read (or that turned out to be past it)
    errors: list  # (topic, partition, message)


class ClosableReader:
    """close() may come from another thread while an abandoned (timed-out) collection is still
    reading; the reading thread then releases what it holds itself, when it is done."""

    def __init__(self):
        self._busy = threading.Lock()
        self._closed = False

    def close(self) -> None:
        self._closed = True
        if self._busy.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._busy.release()

    def read(self, ranges: dict, timeout: float, max_records_per_partition: int = 1000) -> ReadResult:
        """ranges: (topic, partition) -> (first offset, end offset exclusive). Waits at most timeout."""
        result = ReadResult({tp: [] for tp in ranges}, set(), [])
        if not ranges or self._closed:
            return result
        with self._busy:
            self._read_into(result, ranges, time.monotonic() + timeout, max_records_per_partition)
        return result

    def _read_into(self, result: ReadResult, ranges: dict, deadline: float, max_records_per_partition: int) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class RecordReader(ClosableReader):
    def __init__(self, base_config: dict):
        super().__init__()
        self._conf = {
            **base_config,
            # librdkafka wants a group id even for assign(); nothing joins or commits with it.
            "group.id": "mqwatch-reader",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # A committed offset below the log start (deleted by retention) reads the oldest record.
            "auto.offset.reset": "earliest",
            # Only records known to exist are read (below the end offset), so no Fetch needs the
            # broker to wait for data; tansu still held the second Fetch of a 500-partition read
            # for the whole wait (100 ms: a read took ~0.19 s, with 20 ms ~0.12 s).
            "fetch.wait.max.ms": 20,
            # Only the first record at each offset is wanted: no prefetching of whole partitions
            # (librdkafka's defaults queue up to 100,000 messages and 64 MB per consumer).
            # librdkafka compares queued.min.messages with the length of the consumer's one
            # shared queue, not the partition's: at 1, the first record queued made every
            # partition not yet fetched back off for fetch.queue.backoff.ms (1 s by default),
            # and a 500-partition read took 1-2 s instead of 0.15 s.
            "queued.min.messages": 1000,
            "fetch.queue.backoff.ms": 10,
            "queued.max.messages.kbytes": 4096,
            "max.partition.fetch.bytes": 65536,
            "fetch.max.bytes": 4 * 1024 * 1024,
            "enable.partition.eof": True,
        }
        self._consumer: Consumer | None = None

    def _release(self) -> None:
        self._close_consumer()

    def _close_consumer(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError):
                pass
            self._consumer = None

    def _read_into(self, result: ReadResult, ranges: dict, deadline: float, max_records_per_partition: int) -> None:
        try:
            self._consumer = Consumer(self._conf)
            self._read(self._consumer, ranges, deadline, max_records_per_partition, result)
        except KafkaException as e:
            result.errors.extend((t, p, str(e)) for (t, p) in ranges if (t, p) not in result.complete)
        finally:
            self._close_consumer()

    def _read(self, c: Consumer, ranges: dict, deadline: float, max_records_per_partition: int, result: ReadResult) -> None:
        pending = dict(ranges)
        c.assign([TopicPartition(t, p, first) for (t, p), (first, _) in ranges.items()])
        while pending and time.monotonic() < deadline:
            # consume() waits for num_messages or the timeout: asking for more than can still
            # come made every read of fewer than ~250 partitions last the whole 0.2 s.
            batch = c.consume(num_messages=min(500, len(pending)),
                              timeout=min(0.2, max(0.01, deadline - time.monotonic())))
            for msg in batch:
                tp = (msg.topic(), msg.partition())
                if tp not in pending:
                    continue
                first, stop = pending[tp]
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        # Nothing more to read: whatever we were asked for past here does not exist.
                        result.complete.add(tp)
                        del pending[tp]
                    elif err.code() != KafkaError._NO_OFFSET:
                        result.errors.append((tp[0], tp[1], err.str()))
                        del pending[tp]
                    continue
                if msg.offset() < first:
                    continue
                if msg.offset() < stop and len(result.records[tp]) < max_records_per_partition:
                    result.records[tp].append(_record(msg))
                if msg.offset() >= stop - 1 or len(result.records[tp]) >= max_records_per_partition:
                    result.complete.add(tp)
                    del pending[tp]


def _record(msg) -> Record:
    ts_type, ts_ms = msg.timestamp()
    ts = ts_ms / 1000.0 if ts_type != TIMESTAMP_NOT_AVAILABLE and ts_ms is not None and ts_ms > 0 else None
    return Record(msg.topic(), msg.partition(), msg.offset(), ts, tuple(msg.headers() or ()), msg.value())
