"""Runs every check on its own interval, each collection in a worker with a hard timeout.

Python can't kill a thread, so a hung collection is abandoned: the check is reported
down (reason `timeout`) and no new collection of that check starts until the hung one
returns. Other checks, the HTTP server and scrapes never wait for it.
"""

from __future__ import annotations

import logging
import threading
import time

from mqwatch.agent.check import Check, CheckError
from mqwatch.agent.config import CheckConfig
from mqwatch.agent.exporter import Exporter
from mqwatch.agent.snapshot import Snapshot, SnapshotBuilder, UndeclaredMetric

log = logging.getLogger("mqwatch.scheduler")


class Collector:
    """Collects one check once, with a timeout; remembers a worker that is still hung."""

    def __init__(self, check: Check, timeout: float):
        self.check, self.timeout = check, timeout
        self._busy: threading.Thread | None = None
        self._busy_since = 0.0
        self._last: SnapshotBuilder | None = None  # of the last complete collection: its series are reused

    def collect(self) -> Snapshot:
        check = self.check
        builder = SnapshotBuilder(check.system, check.name, check.metrics, previous=self._last)
        started, t0 = time.time(), time.monotonic()
        if self._busy is not None and self._busy.is_alive():
            hung = time.monotonic() - self._busy_since
            builder.error("timeout", f"previous collection still running after {hung:.1f}s")
            return builder.build(started, 0.0, ok=False, error=f"collection hung for {hung:.1f}s (timeout {self.timeout:g}s)")
        outcome: dict = {}

        def work():
            try:
                check.collect(builder)
            except CheckError as e:
                outcome["error"] = (e.reason, str(e))
            except UndeclaredMetric as e:
                outcome["error"] = ("internal", str(e))
            except Exception as e:  # a bug or an unexpected reply must not kill the runner
                log.exception("collect_crashed check=%s/%s", check.kind, check.name)
                outcome["error"] = ("internal", f"{type(e).__name__}: {e}")

        worker = threading.Thread(target=work, name=f"collect-{check.kind}-{check.name}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        duration = time.monotonic() - t0
        if worker.is_alive():
            self._busy, self._busy_since = worker, t0
            timeout_builder = SnapshotBuilder(check.system, check.name, check.metrics)
            timeout_builder.error("timeout", f"collection did not finish within {self.timeout:g}s")
            return timeout_builder.build(started, duration, ok=False, error=f"collection did not finish within {self.timeout:g}s")
        self._busy = None
        if "error" in outcome:
            reason, message = outcome["error"]
            failed = SnapshotBuilder(check.system, check.name, check.metrics)
            failed.errors = list(builder.errors) + [(reason, message)]
            return failed.build(started, duration, ok=False, error=message)
        self._last = builder
        return builder.build(started, duration)


class Runner:
    """A check's loop: collect, publish, sleep until the next tick."""

    def __init__(self, cfg: CheckConfig, check: Check, exporter: Exporter):
        self.cfg, self.check, self.exporter = cfg, check, exporter
        self.collector = Collector(check, cfg.timeout)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"runner-{cfg.key}", daemon=True)
        # This runner's generation: the exporter takes snapshots only from the check's current
        # runner, so one stopped by a reload or shutdown never publishes again.
        self._owner = object()
        exporter.ensure(cfg.kind, cfg.name, cfg.interval, owner=self._owner)

    def start(self) -> None:
        self._thread.start()

    def stop(self, close: bool = True) -> None:
        """Stop the loop; a collection still running is abandoned and its result dropped."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(timeout=1.0)
        if close:
            _close_quietly(self.check)

    def retime(self, cfg: CheckConfig) -> None:
        """Take a new interval/timeout without losing the check's state."""
        self.cfg = cfg
        self.collector.timeout = cfg.timeout
        self.exporter.ensure(cfg.kind, cfg.name, cfg.interval, owner=self._owner)

    def run_once(self) -> Snapshot:
        snap = self.collector.collect()
        if self._stop.is_set() or not self.exporter.publish(snap, self.cfg.kind, owner=self._owner):
            log.info("collect_dropped check=%s reason=%s", self.cfg.key, "the check was removed, replaced or stopped")
            return snap
        if snap.ok:
            log.debug("collect_ok check=%s duration=%.3f series=%d partial_errors=%d",
                      self.cfg.key, snap.duration, snap.series, len(snap.errors))
            for reason, message in snap.errors:
                log.warning("collect_partial_error check=%s reason=%s error=%s", self.cfg.key, reason, _one_line(message))
        else:
            log.warning("collect_failed check=%s duration=%.3f reason=%s error=%s", self.cfg.key, snap.duration,
                        snap.errors[-1][0] if snap.errors else "unknown", _one_line(snap.error))
        return snap

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.run_once()
            next_tick += self.cfg.interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # a collection longer than the interval: don't burst to catch up
                next_tick, delay = time.monotonic(), 0.0
            self._stop.wait(delay)


def collect_all(pairs: list[tuple[CheckConfig, Check]]) -> list[Snapshot]:
    """One collection of every check, in parallel, each within its own timeout (`mqwatch check`)."""
    results: list[Snapshot | None] = [None] * len(pairs)

    def one(i, cfg, check):
        results[i] = Collector(check, cfg.timeout).collect()

    threads = [threading.Thread(target=one, args=(i, c, k), daemon=True) for i, (c, k) in enumerate(pairs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results  # type: ignore[return-value]


def close_check(check: Check) -> None:
    """Close a check's clients; a failure is logged, never raised."""
    try:
        check.close()
    except Exception as e:
        log.warning("check_close_failed check=%s/%s error=%r", check.kind, check.name, e)


def _close_quietly(check: Check) -> None:
    # close() of a client stuck on a dead broker may block: never let it block a reload
    threading.Thread(target=close_check, args=(check,), daemon=True, name=f"close-{check.kind}-{check.name}").start()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
