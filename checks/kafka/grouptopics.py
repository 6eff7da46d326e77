"""Sharded: which of this shard's topics each consumer group has committed offsets on.

OffsetFetch either returns every offset a group committed (no partition list) or exactly the
partitions asked for. A shard asking each group for all the partitions it owns pays for
partitions the group never touched: groups usually consume a few topics, so at 10k
partitions x 50 groups (a fifth of the topics each) that is twice the offsets of one
unsharded fetch. So a shard learns each group's topics from a whole fetch (a group's first
cycle) and then asks only for the partitions of its own topics the group committed on.

A group may start committing on a topic it never used: each group's whole fetch is repeated
every REFRESH_CYCLES cycles (staggered, so about 1/REFRESH_CYCLES of the groups per cycle),
which bounds how long a new (group, topic) pair can go unseen on a shard. Unsharded agents
always fetch whole and are not affected.
"""

from __future__ import annotations

from confluent_kafka import TopicPartition

from mqwatch.agent.sharding import owner

REFRESH_CYCLES = 10


class GroupTopics:
    def __init__(self, refresh_cycles: int = REFRESH_CYCLES):
        self.refresh_cycles = refresh_cycles
        self._known: dict[str, set[str]] = {}  # group -> owned topics it has offsets on
        self._cycle = 0

    def plan(self, ids: list[str], topics: dict) -> dict:
        """group -> partitions to ask (a list, maybe empty: nothing to ask) or None (a whole fetch)."""
        self._cycle += 1
        self._known = {g: t for g, t in self._known.items() if g in set(ids)}
        plan: dict = {}
        for gid in ids:
            known = self._known.get(gid)
            # owner() only staggers the refreshes over cycles: a stable spread, not ownership
            if known is None or (self._cycle + owner(gid, self.refresh_cycles)) % self.refresh_cycles == 0:
                plan[gid] = None
            else:
                plan[gid] = [TopicPartition(t, p) for t in sorted(known) if t in topics for p in topics[t]]
        return plan

    def learn(self, gid: str, offsets: dict) -> None:
        """A group's offsets on this shard's topics, as just read ((topic, partition) -> offset)."""
        self._known[gid] = {t for t, _ in offsets}
