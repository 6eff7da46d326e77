"""Runner generations: a collection that outlives its runner (reload replaced or removed the
check, or the agent stopped) is dropped, whatever the check. The check here is a test double
whose collection blocks until released: what is under test is the scheduler, not a broker
(the same on real brokers: tests/faults/test_faults.py, reload while a collection hangs)."""

from __future__ import annotations

import threading

from mqwatch.agent.check import Check
from mqwatch.agent.exporter import Exporter
from mqwatch.agent.metrics import MetricDef
from mqwatch.agent.scheduler import Runner
from tests.helpers import config_for

GAUGE = MetricDef("t_generation", "gauge", "Which runner published.")


class Blocking(Check):
    kind = "redis"  # any registered kind: only its name and metrics matter here
    metrics = (GAUGE,)

    def __init__(self, generation: int):
        super().__init__("shop", None, 5.0)
        self.generation = generation
        self.release = threading.Event()

    def collect(self, out):
        self.release.wait(10)
        out.add("t_generation", self.generation)


def test_a_replaced_or_removed_checks_late_collection_is_dropped():
    cfg = config_for({"kind": "redis", "name": "shop", "url": "redis://127.0.0.1:1/0"}).checks[0]
    exporter = Exporter(process_metrics=False)
    old_check = Blocking(1)
    old = Runner(cfg, old_check, exporter)
    result = {}
    late = threading.Thread(target=lambda: result.setdefault("snap", old.run_once()))
    late.start()  # the old runner's collection is in flight
    old.stop(close=False)
    new_check = Blocking(2)
    new = Runner(cfg, new_check, exporter)  # a reload replaced the check (same name)
    new_check.release.set()
    new.run_once()
    old_check.release.set()
    late.join(10)
    assert result["snap"].ok  # it did finish...
    body = exporter.body().decode()
    assert 't_generation{cluster="shop",system="redis"} 2.0' in body  # ...but only the new runner's data is served
    assert 't_generation{cluster="shop",system="redis"} 1.0' not in body

    # Removed: the state goes and a late publish cannot create it again.
    new.stop(close=False)
    exporter.retain(set())
    assert not new.exporter.publish(new.collector.collect(), "redis", owner=new._owner)
    assert 'cluster="shop"' not in exporter.body().decode()
