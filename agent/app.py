"""The running agent: config, one runner per check, reload without losing state."""

from __future__ import annotations

import gc
import logging
import threading

from mqwatch.agent.check import Check
from mqwatch.agent.config import CheckConfig, Config, load_config
from mqwatch.agent.exporter import Exporter
from mqwatch.agent.redact import redact
from mqwatch.agent.registry import get_check_class
from mqwatch.agent.scheduler import Runner
from mqwatch.agent.schema import ConfigErrors
from mqwatch.agent.sharding import WHOLE, Shard

log = logging.getLogger("mqwatch.agent")


def build_check(cfg: CheckConfig, shard: Shard = WHOLE) -> Check:
    cls = get_check_class(cfg.kind)
    check = cls(cfg.name, cfg.options, cfg.timeout)
    check.shard = shard
    return check


class Agent:
    def __init__(self, config: Config, exporter: Exporter | None = None, shard: Shard = WHOLE):
        """`shard` is fixed for the agent's life (a reload changing agent.shard needs a restart:
        the other replicas would have to change at the same time anyway)."""
        self.config, self.shard = config, shard
        self.exporter = exporter or Exporter(shard=shard)
        self.runners: dict[str, Runner] = {}
        self._reload_lock = threading.Lock()

    def start(self, freeze: bool = False) -> None:
        """freeze (`mqwatch run`): once the checks are built, take every object made so far out of
        the cyclic garbage collector's passes (gc.freeze), before the first collection. Modules,
        config and the checks live as long as the process, yet every full pass walked
        them all: a fresh 10k-partition collection's full passes took 26-85 ms, 3-5 ms frozen.
        Not for an agent inside another program, whose objects it would freeze too. A reload
        unfreezes them: a check it drops must stay collectable."""
        self._apply(self.config, freeze)

    def stop(self) -> None:
        for r in self.runners.values():
            r.stop()
        self.runners.clear()

    def ready(self) -> bool:
        """Every configured check has completed at least one collection."""
        # The configured checks, not the runners: before start() has made them, "every runner
        # has collected" would be true of none.
        states = {s.key: s for s in self.exporter.states()}
        return all(states.get(c.key) is not None and states[c.key].completed > 0 for c in self.config.checks)

    def reload(self) -> tuple[bool, str]:
        """Re-read the config file; an invalid one is rejected and the running config stays."""
        with self._reload_lock:
            try:
                new = load_config(self.config.file)
            except ConfigErrors as e:
                log.error("reload_rejected errors=%d first=%s", len(e.errors), str(e.errors[0]))
                return False, str(e)
            if new.agent.listen != self.config.agent.listen:
                log.warning("reload_listen_ignored reason=%s", "changing agent.listen needs a restart")
            if new.agent.shard != self.config.agent.shard:
                log.warning("reload_shard_ignored reason=%s", "changing agent.shard needs a restart")
            # A check dropped now must be collectable if it sits in a reference cycle, so the
            # start-up objects are handed back to the collector (a no-op if none were frozen).
            gc.unfreeze()
            try:
                self._apply(new)
            except Exception as e:
                log.exception("reload_failed")
                return False, redact(f"reload failed: {e}")
            self.config = new
            log.info("reload_ok checks=%d", len(new.checks))
            return True, f"reloaded {len(new.checks)} checks"

    def _apply(self, config: Config, freeze: bool = False) -> None:
        wanted = {c.key: c for c in config.checks}
        for key in list(self.runners):
            runner = self.runners[key]
            cfg = wanted.get(key)
            if cfg is None or cfg.options != runner.cfg.options:
                runner.stop()
                del self.runners[key]
        new_checks: list[Runner] = []
        for key, cfg in wanted.items():
            if key in self.runners:
                if cfg != self.runners[key].cfg:
                    self.runners[key].retime(cfg)
                continue
            runner = Runner(cfg, build_check(cfg, self.shard), self.exporter)
            self.runners[key] = runner
            new_checks.append(runner)
        self.exporter.retain(set(wanted))
        if freeze:
            gc.freeze()
        for r in new_checks:
            r.start()
