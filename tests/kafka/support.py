"""Kafka-area test support: a check instance collected repeatedly, and status lookup."""

from __future__ import annotations

from tests.helpers import collect_once, make_check


class CheckRun:
    """One KafkaCheck instance collected repeatedly, the way the agent's runner does."""

    def __init__(self, config: dict):
        self.cfg, self.check = make_check({"kind": "kafka", "name": "shop", **config})

    def collect(self):
        snap = collect_once(self.check)
        assert snap.ok, snap.error
        return snap

    def close(self):
        self.check.close()


def status_of(snap, topic: str, group: str) -> str | None:
    """The one status whose series is 1, asserting the series is one-hot."""
    hot = [lbl["status"] for lbl, v in snap.samples("mqwatch_consumer_status")
           if lbl["queue"] == topic and lbl["consumer"] == group and v == 1]
    assert len(hot) <= 1, hot
    return hot[0] if hot else None
