"""Reads new dead letters with a Reader to learn why they died and when the newest arrived,
and new retry-topic messages to learn how often they were delivered.

Pulsar's client dead-letter policy copies the message and adds REAL_TOPIC and
ORIGIN_MESSAGE_ID; the retry topic adds RECONSUMETIMES. None of these says why
processing failed, so an application's own property (reason_property) wins when set.

RECONSUMETIMES is the one per-message delivery count Pulsar puts in a message: the Java
client's retry policy (`enableRetry`, `reconsumeLater`) sets it to 1 on a message's first
trip to `<topic>-<subscription>-RETRY` and adds 1 on each further one. The highest value
read per retry topic is kept for each of the last `window` collections (0 for a collection
that read none), so a message that keeps coming back shows for that long, not only in the
collection that happened to read it.
"""

from __future__ import annotations

import time
from collections import deque

import pulsar

from mqwatch.agent.dlq import ReasonCounts

REDELIVERY_LIMIT = "redelivery_limit_reached"
RECONSUME_LIMIT = "reconsume_limit_reached"


def reason_of(properties: dict, reason_property: str) -> str:
    if reason_property and properties.get(reason_property):
        return properties[reason_property]
    if "RECONSUMETIMES" in properties:
        return RECONSUME_LIMIT
    if "ORIGIN_MESSAGE_ID" in properties or "REAL_TOPIC" in properties:
        return REDELIVERY_LIMIT
    return "unknown"


# RECONSUMETIMES values above this are not a client's count (the Java client's maxReconsumeTimes is an int).
_MAX_RECONSUME = 2**31 - 1


def reconsume_times(properties: dict) -> int | None:
    """A retry-topic message's RECONSUMETIMES, or None when absent or not a count."""
    try:
        n = int(properties.get("RECONSUMETIMES", ""))
    except ValueError:
        return None
    return n if 0 <= n <= _MAX_RECONSUME else None


class DeadLetterSampler:
    def __init__(self, reason_property: str, max_messages: int, reasons_mode: str = "class", window: int = 5):
        self.reason_property, self.max_messages, self.window = reason_property, max_messages, window
        self.reasons = ReasonCounts(mode=reasons_mode)
        self.newest_publish: dict[str, float] = {}  # dlq -> unix seconds
        self._reconsumed: dict[str, deque] = {}  # retry topic -> highest RECONSUMETIMES per collection
        self._readers: dict = {}

    def sample(self, client: pulsar.Client, dlq: str, deadline: float) -> None:
        for msg in self._read(client, dlq, deadline):
            self.reasons.add(dlq, reason_of(msg.properties(), self.reason_property))
            published = msg.publish_timestamp() / 1000.0
            self.newest_publish[dlq] = max(self.newest_publish.get(dlq, 0.0), published)

    def sample_retries(self, client: pulsar.Client, retry_topic: str, deadline: float) -> None:
        highest = 0
        try:
            for msg in self._read(client, retry_topic, deadline):
                highest = max(highest, reconsume_times(msg.properties()) or 0)
        finally:  # what was read before a failure counts
            self._reconsumed.setdefault(retry_topic, deque(maxlen=self.window)).append(highest)

    def max_deliveries(self, retry_topic: str) -> int | None:
        """The highest RECONSUMETIMES read over the last `window` collections; None if never sampled."""
        seen = self._reconsumed.get(retry_topic)
        return max(seen) if seen else None

    def _read(self, client: pulsar.Client, topic: str, deadline: float):
        reader = self._readers.get(topic)
        if reader is None:
            reader = self._readers[topic] = client.create_reader(topic, pulsar.MessageId.earliest)
        for _ in range(self.max_messages):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                yield reader.read_next(timeout_millis=max(1, int(min(left, 0.2) * 1000)))
            except pulsar.Timeout:
                return

    def retain(self, topics) -> None:
        """Keep the state of these dead-letter and retry topics only."""
        topics = set(topics)
        self.reasons.retain(topics)
        for d in list(self._readers):
            if d not in topics:
                self._close(self._readers.pop(d))
                self.newest_publish.pop(d, None)
        for d in [d for d in self._reconsumed if d not in topics]:
            del self._reconsumed[d]

    def close(self) -> None:
        for r in self._readers.values():
            self._close(r)
        self._readers.clear()

    @staticmethod
    def _close(reader) -> None:
        try:
            reader.close()
        except Exception:
            pass
