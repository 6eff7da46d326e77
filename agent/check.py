"""The interface every check implements, built in or plugged in through `mqwatch.checks`."""

from __future__ import annotations

from typing import ClassVar

from mqwatch.agent.metrics import MetricDef
from mqwatch.agent.schema import Schema, Section
from mqwatch.agent.sharding import WHOLE, Shard
from mqwatch.agent.snapshot import SnapshotBuilder


class CheckError(Exception):
    """A collection failed as a whole. `reason` is a short, bounded label value."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


class Check:
    """One monitored system. Subclasses set the class attributes and implement collect().

    An instance lives as long as its config is unchanged (reloads keep it), so it may
    keep state across collections: offset histories, status windows, DLQ counters.
    collect() runs in a worker thread with a timeout; it must not share clients with
    other checks, and it should give its own network calls timeouts below the check's.

    `shard` is this agent's share of the work when replicas split it (`--shard I/N`): a check
    reads only what `shard.owns(name)` (its expensive requests too, not just its output) and
    exports cluster-wide series only when `shard.first`. The core sets it before the first
    collect(); unsharded it owns everything.
    """

    kind: ClassVar[str]
    config_schema: ClassVar[Schema]
    metrics: ClassVar[tuple[MetricDef, ...]]
    # Every reason the check reports in mqwatch_collect_errors_total besides agent.metrics.CORE_ERROR_REASONS:
    # each is exported at 0 from the first collection (so increase() sees the first error) and
    # listed in docs/metrics.md. A reason left out still counts; it just appears when it happens.
    error_reasons: ClassVar[tuple[str, ...]] = ()
    shard: Shard = WHOLE

    def __init__(self, name: str, options: Section, timeout: float):
        self.name, self.options, self.timeout = name, options, timeout

    @property
    def system(self) -> str:
        return self.kind

    def collect(self, out: SnapshotBuilder) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release clients and threads; called when the check is removed or the agent stops."""
