"""Stream canary: XADD a numbered message to a key of its own, read it back with XREADGROUP, XACK it.

Opt-in (`canary.enabled`), one round per collection like the Pulsar canary. The key is
capped (`MAXLEN ~ 1000`) so it never grows; the group `mqwatch-canary` is created with
MKSTREAM when missing, at `$`, so a recreated key starts clean. Each message carries this
process's run id and a sequence number (agent/canary.py turns them into lost, duplicated
and reordered counts). Failure stages: `produce` (XADD refused), `consume` (XREADGROUP or
XACK refused), `timeout` (added but not read back within `canary.timeout`).
"""

from __future__ import annotations

import time
import uuid

import redis

from mqwatch.agent.canary import CanaryStats, SequenceTracker

GROUP, CONSUMER = "mqwatch-canary", "agent"
_MAXLEN = 1000


class StreamCanary:
    def __init__(self, key: str, timeout: float, lost_after: float):
        self.key, self.timeout = key, timeout
        self.stats = CanaryStats()
        self.sequence = SequenceTracker(lost_after)
        self._run_id = uuid.uuid4().hex[:12]
        self._seq = 0

    def run(self, r: redis.Redis, timeout: float) -> tuple[str, str] | None:
        """One round trip; returns (stage, message) when it failed."""
        sent = time.monotonic()
        try:
            seq = self.send(r)
        except redis.RedisError as e:
            return self._fail("produce", f"canary XADD to {self.key!r} failed: {e}")
        try:
            if self.receive(r, seq, sent + timeout):
                self.stats.observe(time.monotonic() - sent)
                return None
        except redis.RedisError as e:
            return self._fail("consume", f"canary XREADGROUP on {self.key!r} failed: {e}")
        return self._fail("timeout", f"canary entry did not come back from {self.key!r} within {timeout:g}s")

    def send(self, r: redis.Redis) -> int:
        self._ensure_group(r)
        self._seq += 1
        r.xadd(self.key, {"run": self._run_id, "seq": self._seq, "sent": f"{time.time():.6f}"},
               maxlen=_MAXLEN, approximate=True)
        self.sequence.acknowledged(self._seq, time.monotonic())  # XADD answered: Redis holds it
        return self._seq

    def receive(self, r: redis.Redis, seq: int, deadline: float) -> bool:
        """Read (and acknowledge) new entries until `seq` comes back or the deadline passes."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            reply = r.xreadgroup(GROUP, CONSUMER, {self.key: ">"}, count=100, block=max(1, int(left * 1000)))
            found = False
            for _, entries in reply or ():
                ids = []
                for entry_id, fields in entries:
                    ids.append(entry_id)
                    found |= self._consumed(fields) == seq
                if ids:
                    r.xack(self.key, GROUP, *ids)
            if found:
                return True

    def sequence_counts(self) -> tuple[int, int, int]:
        self.sequence.expire(time.monotonic())
        return self.sequence.counts()

    def _consumed(self, fields: dict) -> int | None:
        run, seq = fields.get(b"run"), fields.get(b"seq")
        if run != self._run_id.encode() or seq is None or not seq.isdigit():
            return None  # an earlier agent's entry, or not a canary entry at all
        self.sequence.consumed(int(seq))
        return int(seq)

    def _ensure_group(self, r: redis.Redis) -> None:
        try:
            r.xgroup_create(self.key, GROUP, id="$", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def _fail(self, stage: str, message: str) -> tuple[str, str]:
        self.stats.fail(stage)
        return stage, message
