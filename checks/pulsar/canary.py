"""Canary: produce a timestamped message and consume it back; same metrics as every system."""

from __future__ import annotations

import time
import uuid

import pulsar

from mqwatch.agent.canary import SequenceTracker
from mqwatch.agent.snapshot import Histogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))
STAGES = ("produce", "consume", "timeout")
SUBSCRIPTION = "mqwatch-canary"
_ID = "mqwatch-canary-id"
_RUN, _SEQ = "mqwatch-canary-run", "mqwatch-canary-seq"


class Canary:
    def __init__(self, topic: str, lost_after: float = 60.0):
        self.topic = topic
        self.sequence = SequenceTracker(lost_after)
        self._run_id = uuid.uuid4().hex[:12]  # this agent's messages, not an earlier one's
        self._seq = 0
        self._producer = None
        self._consumer = None
        self._counts = [0] * len(BUCKETS)
        self._sum = 0.0
        self.failures = {s: 0 for s in STAGES}

    def histogram(self) -> Histogram:
        cumulative, running = [], 0
        for bound, n in zip(BUCKETS, self._counts):
            running += n
            cumulative.append((bound, float(running)))
        return Histogram(tuple(cumulative), self._sum)

    def run(self, client: pulsar.Client, timeout: float) -> tuple[str, str] | None:
        """One round trip; returns (stage, message) when it failed."""
        deadline = time.monotonic() + timeout
        try:
            if self._consumer is None:
                # Subscribe before producing so the canary message is in this subscription's backlog.
                # Exclusive: a second agent on the same canary topic fails loudly instead of
                # silently stealing this agent's canaries.
                self._consumer = client.subscribe(self.topic, SUBSCRIPTION, consumer_type=pulsar.ConsumerType.Exclusive)
        except Exception as e:
            return self._fail("consume", f"canary cannot subscribe to {self.topic}: {e}")
        try:
            if self._producer is None:
                self._producer = client.create_producer(self.topic, batching_enabled=False)
            token = uuid.uuid4().hex
            sent = time.time()
            self._seq += 1
            seq = self._seq
            self._producer.send(b"mqwatch canary", properties={
                _ID: token, "mqwatch-sent-at": f"{sent:.6f}", _RUN: self._run_id, _SEQ: str(seq)})
            self.sequence.acknowledged(seq, time.monotonic())  # send() returns once the broker stored it
        except Exception as e:
            return self._fail("produce", f"canary produce to {self.topic} failed: {e}")
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self._fail("timeout", f"canary message did not come back from {self.topic} within {timeout:g}s")
            try:
                msg = self._consumer.receive(timeout_millis=max(1, int(left * 1000)))
            except pulsar.Timeout:
                continue
            except Exception as e:
                return self._fail("consume", f"canary consume from {self.topic} failed: {e}")
            self._consumer.acknowledge(msg)
            props = msg.properties()
            if props.get(_RUN) == self._run_id and str(props.get(_SEQ, "")).isdigit():
                self.sequence.consumed(int(props[_SEQ]))
            if props.get(_ID) == token:  # older canaries left behind are drained
                self._observe(time.time() - sent)
                return None

    def sequence_counts(self) -> tuple[int, int, int]:
        self.sequence.expire(time.monotonic())
        return self.sequence.counts()

    def _observe(self, seconds: float) -> None:
        self._sum += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self._counts[i] += 1
                break

    def _fail(self, stage: str, message: str):
        self.failures[stage] += 1
        self.reset()
        return stage, message

    def reset(self) -> None:
        for handle in (self._producer, self._consumer):
            try:
                if handle is not None:
                    handle.close()
            except Exception:
                pass
        self._producer = self._consumer = None
