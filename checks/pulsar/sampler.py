"""Reads new dead letters with a Reader to learn why they died and when the newest arrived.

Pulsar's client dead-letter policy copies the message and adds REAL_TOPIC and
ORIGIN_MESSAGE_ID; the retry topic adds RECONSUMETIMES. None of these says why
processing failed, so an application's own property (reason_property) wins when set.
"""

from __future__ import annotations

import time

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


class DeadLetterSampler:
    def __init__(self, reason_property: str, max_messages: int, reasons_mode: str = "class"):
        self.reason_property, self.max_messages = reason_property, max_messages
        self.reasons = ReasonCounts(mode=reasons_mode)
        self.newest_publish: dict[str, float] = {}  # dlq -> unix seconds
        self._readers: dict = {}

    def sample(self, client: pulsar.Client, dlq: str, deadline: float) -> None:
        reader = self._readers.get(dlq)
        if reader is None:
            reader = self._readers[dlq] = client.create_reader(dlq, pulsar.MessageId.earliest)
        for _ in range(self.max_messages):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                msg = reader.read_next(timeout_millis=max(1, int(min(left, 0.2) * 1000)))
            except pulsar.Timeout:
                return
            self.reasons.add(dlq, reason_of(msg.properties(), self.reason_property))
            published = msg.publish_timestamp() / 1000.0
            self.newest_publish[dlq] = max(self.newest_publish.get(dlq, 0.0), published)

    def retain(self, dlqs) -> None:
        dlqs = set(dlqs)
        self.reasons.retain(dlqs)
        for d in list(self._readers):
            if d not in dlqs:
                self._close(self._readers.pop(d))
                self.newest_publish.pop(d, None)

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
