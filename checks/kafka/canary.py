"""End-to-end canary: produce a timestamped message, consume it back, time the round trip.

Like KMinion's end-to-end monitoring. It runs in its own thread on its own interval, so a
slow or dead broker delays only the canary; a collection just reads the latest figures.
Each message carries this process's run id and a sequence number, so messages of an
earlier agent (or another agent on the same topic) are never matched.

Failure stages: `produce` (the broker did not acknowledge the message, or the topic could
not be created), `consume` (the consumer reported an error), `timeout` (acknowledged but
not consumed back within `timeout`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from mqwatch.agent.canary import CanaryStats, SequenceTracker

log = logging.getLogger("mqwatch.kafka.canary")

class Canary:
    def __init__(self, options, client_config: dict):
        self.options = options
        self.client_config = client_config
        self.stats = CanaryStats()
        self.sequence = SequenceTracker(options.lost_after)
        self._seq = 0  # numbers go on across reconnections, so a gap stays visible
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}".encode()
        self._inflight: dict = {}  # seq -> monotonic send time (acknowledged or not)
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"canary-{self.options.topic}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.options.timeout + 5)
            self._thread = None

    # ---- the canary thread ------------------------------------------------------------
    def _run(self) -> None:
        opts = self.options
        clients = None
        try:
            while not self._stop.is_set():
                try:
                    if clients is None:
                        clients = self._clients(self._prepare())
                    self._round(*clients)
                except _Failed as e:
                    self._failed(e.stage, str(e))
                except Exception as e:  # never let the canary die silently: count it, start over
                    log.exception("canary_crashed topic=%s", opts.topic)
                    self._failed("produce", f"{type(e).__name__}: {e}")
                    _close(clients)
                    clients = None
        finally:
            _close(clients)

    def _failed(self, stage: str, message: str) -> None:
        self.last_error = message
        log.warning("canary_failed stage=%s error=%s", stage, message)
        self.stats.fail(stage)
        self._stop.wait(self.options.interval)

    def _prepare(self) -> list[int]:
        opts = self.options
        admin = AdminClient({**self.client_config, "socket.connection.setup.timeout.ms": int(opts.timeout * 1000)})
        try:
            # All topics, not just ours: a metadata request naming a missing topic makes brokers
            # with auto.create.topics.enable create it with their defaults.
            md = admin.list_topics(timeout=opts.timeout)
        except KafkaException as e:
            raise _Failed("produce", f"cannot fetch metadata for canary topic {opts.topic}: {e}") from None
        t = md.topics.get(opts.topic)
        if t is not None and t.error is None and t.partitions:
            return sorted(t.partitions)
        if not opts.create_topic:
            raise _Failed("produce", f"canary topic {opts.topic} does not exist and create_topic is false")
        f = admin.create_topics([NewTopic(opts.topic, opts.partitions, opts.replication_factor)],
                                request_timeout=opts.timeout)[opts.topic]
        try:
            f.result(timeout=opts.timeout)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise _Failed("produce", f"cannot create canary topic {opts.topic}: {e.args[0].str()}") from None
        return list(range(opts.partitions))

    def _clients(self, partitions):
        opts = self.options
        timeout_ms = int(opts.timeout * 1000)
        consumer = Consumer({
            **self.client_config, "group.id": "mqwatch-canary", "enable.auto.commit": False,
            "fetch.wait.max.ms": 50, "socket.connection.setup.timeout.ms": timeout_ms,
            # A truncated or recreated topic restarts at its beginning: skipping to its end would
            # drop canaries produced meanwhile, which would then count as lost.
            "auto.offset.reset": "earliest",
        })
        # Start at the current end, resolved now: an assignment at OFFSET_END resolves lazily
        # and would skip a message produced before it did.
        start = []
        for p in partitions:
            try:
                _, high = consumer.get_watermark_offsets(TopicPartition(opts.topic, p), timeout=opts.timeout)
            except KafkaException as e:
                consumer.close()
                raise _Failed("consume", f"cannot read the end offset of canary topic {opts.topic}[{p}]: {e}") from None
            start.append(TopicPartition(opts.topic, p, high))
        consumer.assign(start)
        producer = Producer({
            **self.client_config, "linger.ms": 0, "batch.num.messages": 1, "acks": "all",
            "message.timeout.ms": timeout_ms, "socket.connection.setup.timeout.ms": timeout_ms,
        })
        self._partitions = partitions
        return producer, consumer

    def _round(self, producer, consumer) -> None:
        opts = self.options
        sent = time.monotonic()
        key, delivered = self._send(producer)
        deadline = sent + opts.timeout
        acked = False
        while time.monotonic() < deadline and not self._stop.is_set():
            producer.poll(0)
            if "err" in delivered and not acked:
                if delivered["err"] is not None:
                    raise _Failed("produce", f"canary message not acknowledged: {delivered['err'].str()}")
                acked = True
            msg = consumer.poll(0.05)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise _Failed("consume", f"canary consumer: {msg.error().str()}")
                continue
            self._consumed(msg.key())
            if msg.key() == key:
                self.stats.observe(time.monotonic() - sent)
                self._stop.wait(max(0.0, opts.interval - (time.monotonic() - sent)))
                return
        if self._stop.is_set():
            return
        producer.poll(0)
        if not acked and delivered.get("err") is not None:
            raise _Failed("produce", f"canary message not acknowledged: {delivered['err'].str()}")
        if not acked:
            raise _Failed("produce", f"canary message not acknowledged within {opts.timeout:g}s")
        raise _Failed("timeout", f"canary message not consumed back within {opts.timeout:g}s")

    def _send(self, producer) -> tuple[bytes, dict]:
        """Produce the next numbered message; its acknowledgement opens it in the sequence tracker."""
        opts = self.options
        self._seq += 1
        seq = self._seq
        partition = self._partitions[seq % len(self._partitions)]
        delivered: dict = {}

        def on_delivery(err, msg):
            delivered.setdefault("err", err)
            if err is None:
                self.sequence.acknowledged(seq, time.monotonic())

        key = self._run_id + b":" + str(seq).encode()
        producer.produce(opts.topic, key=key, value=str(time.time()).encode(), partition=partition,
                         on_delivery=on_delivery)
        return key, delivered

    def _consumed(self, key) -> None:
        """Every message of this run counts in the sequence, not only the one awaited."""
        run, _, seq = (key or b"").rpartition(b":")
        if run == self._run_id and seq.isdigit():
            self.sequence.consumed(int(seq))

    def sequence_counts(self) -> tuple[int, int, int]:
        self.sequence.expire(time.monotonic())
        return self.sequence.counts()


class _Failed(Exception):
    def __init__(self, stage: str, message: str):
        self.stage = stage
        super().__init__(message)


def _close(clients) -> None:
    if clients is None:
        return
    producer, consumer = clients
    try:
        consumer.close()
    except (KafkaException, RuntimeError):
        pass
    producer.flush(1)
