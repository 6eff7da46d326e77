"""Benchmark 5: memory and steadiness of a running agent on the Kafka 10k scenario.

`mqwatch run` runs as its own process against the benchmark-1 scenario, with an interval
that leaves it idle between collections. Its RSS and series count are read right after
every cycle, and RSS every 20 ms. A container's memory limit must fit the PEAK, so the
judged figure is the highest RSS during collections 51 to 100 of the scenario's 50 groups;
the trough (the level held between collections, after the post-publish trim) is judged
beside it. After CHURN_AT cycles, 500 extra groups commit offsets, are seen, and are deleted
again; the series count must come back to exactly its level and memory close to it. The
collections with the churned groups present have their own peak row (550 groups, not the
scenario's 50), so they are left out of the judged peak.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psutil

from mqwatch.agent.embedded import free_port, wait_for_port
from benchmarks.kafka_scenario import KafkaScenario, build
from benchmarks.report import Result, Row, at_most, below, info
from mqwatch.checks.kafka.embedded import start_tansu

TITLE = "5. Memory and steadiness: agent on the Kafka 10k scenario, 100 cycles, 500 groups churned"
CYCLES = 100
INTERVAL = 2.5  # s; a 10k-partition collection takes 1-2 s here, so readings fall between cycles
CHURN_GROUPS = 500
# After warm-up: the status page's history holds 60 points per lag series, so RSS rises
# over the first 60 cycles whatever happens; the churn is judged against the level after.
CHURN_AT = 60
SERIES_PER_CHURNED_GROUP = 8
LEVEL_WINDOW = 5
TARGET_PEAK_MB = 90.0
TARGET_TROUGH_MB = 70.0
TARGET_GROWTH_PCT = 5.0
TARGET_RETURN_PCT = 5.0

CONFIG = """agent:
  listen: 127.0.0.1:{port}
  interval: {interval}s
  timeout: 60s
  log_level: warning
checks:
  - kind: kafka
    name: bench
    bootstrap_servers: {bootstrap}
"""


def _status(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10) as r:
        checks = json.load(r)["checks"]
    # The server listens before the agent has set up its check: until then, nothing collected.
    return checks[0] if checks else {"collections": 0, "up": None, "series": 0}


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
        return r.read().decode()


def _commit_group(bootstrap: str, group: str, topic: str, partitions: int) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, 0) for p in range(partitions)], asynchronous=False)
    finally:
        c.close()


def _delete_groups(bootstrap: str, groups: list[str]) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.delete_consumer_groups(groups, request_timeout=60).values():
        f.result(timeout=120)


class _Watcher:
    """Reads the agent's RSS and series count once per completed cycle."""

    def __init__(self, port: int, pid: int):
        self.port, self.proc = port, psutil.Process(pid)
        self.samples: dict[int, tuple[float, int]] = {}  # cycle -> (rss MB, series), read just after it
        self.peaks: dict[int, float] = {}  # cycle -> highest RSS seen until the next one completed
        self.lows: dict[int, float] = {}  # cycle -> lowest RSS seen until the next one completed: the trough
        self.readings: dict[int, int] = {}  # cycle -> RSS readings taken while it was the latest

    def until(self, predicate, timeout: float = 600.0, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = _status(self.port)
            n = st["collections"]
            rss = self.proc.memory_info().rss / 2**20
            self.peaks[n] = max(rss, self.peaks.get(n, 0.0))
            self.lows[n] = min(rss, self.lows.get(n, rss))
            self.readings[n] = self.readings.get(n, 0) + 1
            if n and n not in self.samples:
                if st["up"] is not True:
                    raise RuntimeError(f"collection {n} failed: {st['last_error']}")
                self.samples[n] = (rss, st["series"])
            if predicate(st):
                return st
            time.sleep(0.02)
        raise RuntimeError(f"timed out waiting for {what}")

    def at(self, cycle: int) -> tuple[float, int]:
        """The sample of `cycle`, or of the nearest later cycle read."""
        return self.samples[min(c for c in self.samples if c >= cycle)]

    def complete(self, cycle: int) -> bool:
        """Whether the watcher saw the whole gap after `cycle` (until the next one completed):
        only then is its lowest reading a trough and not a reading taken mid-render."""
        return cycle + 1 in self.readings

    def level(self, cycle: int, window: int = LEVEL_WINDOW) -> float:
        """Median over the `window` cycles up to `cycle` of the lowest RSS seen after each (the
        trough between collections); only cycles whose gap was watched to its end count."""
        return statistics.median(r for c, r in self.lows.items() if cycle - window < c <= cycle and self.complete(c))

    def peak(self, first: int, last: int, skip: range = range(0)) -> float:
        """Highest RSS during collections `first` to `last`: collection k runs while the
        latest completed cycle is k - 1."""
        return max((r for c, r in self.peaks.items() if first - 1 <= c <= last - 1 and c + 1 not in skip), default=math.nan)

    def trough(self, first: int, last: int, skip: range = range(0)) -> float:
        """The worst trough: the highest of the per-gap minima after cycles `first` to `last`
        (watched gaps only), i.e. the level every one of those gaps got down to."""
        return max((r for c, r in self.lows.items() if first <= c <= last and self.complete(c) and c not in skip), default=math.nan)


def run(smoke: bool = False) -> Result:
    if smoke:
        scenario, cycles, churn, churn_at = KafkaScenario(200, groups=3, partitions_per_topic=20), 12, 20, 3
        interval = 0.1
    else:
        scenario, cycles, churn, churn_at = KafkaScenario(10_000), CYCLES, CHURN_GROUPS, CHURN_AT
        interval = INTERVAL
    res = Result("memory", TITLE)
    load = os.getloadavg()
    broker = start_tansu()
    agent = None
    workdir = tempfile.mkdtemp(prefix="mqwatch-bench-")
    try:
        build(broker.address, scenario)
        port = free_port()
        cfg = os.path.join(workdir, "mqwatch.yaml")
        with open(cfg, "w") as fh:
            fh.write(CONFIG.format(port=port, bootstrap=broker.address, interval=interval))
        agent = subprocess.Popen([sys.executable, "-m", "mqwatch.agent", "run", "-c", cfg], stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(workdir, "agent.log"), "wb"))
        wait_for_port(port, 30, agent)
        w = _Watcher(port, agent.pid)
        # One cycle past churn_at, so the gap after churn_at is watched to its end.
        w.until(lambda st: st["collections"] >= churn_at + 1, what=f"{churn_at} cycles")
        series_before = w.at(churn_at)[1]
        rss_before = w.level(churn_at)
        print(f"  cycle {churn_at}: {rss_before:.1f} MB, {series_before} series; creating {churn} groups", flush=True)

        churn_ids = [f"churn-{i:04d}" for i in range(churn)]
        topics = scenario.topics
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda ig: _commit_group(broker.address, ig[1], topics[ig[0] % len(topics)], scenario.partitions_per_topic),
                          enumerate(churn_ids)))
        # Each churned group brings at least its members, 6 state series and one lag series.
        peak = w.until(lambda st: st["series"] >= series_before + churn * SERIES_PER_CHURNED_GROUP,
                       what="every churned group to appear")
        print(f"  cycle {peak['collections']}: {peak['series']} series with the churned groups; deleting them", flush=True)
        _delete_groups(broker.address, churn_ids)
        back = w.until(lambda st: st["series"] <= series_before and st["collections"] > peak["collections"] + 1,
                       what="the series to return to their level")
        print(f"  cycle {back['collections']}: {back['series']} series after deleting them", flush=True)
        w.until(lambda st: st["collections"] >= cycles + 1, timeout=1800, what=f"{cycles} cycles")
        exposition = _metrics(port)
        leftovers = [g for g in churn_ids if f'consumer="{g}"' in exposition]
        after = [series for c, (_, series) in w.samples.items() if c > back["collections"]]
        rss_mid, rss_end, series_end = w.level(cycles // 2), w.level(cycles), w.at(cycles)[1]
        churned = range(churn_at + 2, back["collections"] + 1)  # collections that saw (or may have seen) the churned groups
        churn_peak = w.peak(churned.start, churned.stop - 1)
        late_peak = w.peak(cycles // 2 + 1, cycles, skip=churned)
        late_trough = w.trough(cycles // 2 + 1, cycles, skip=churned)
        print(f"  cycle {cycles}: {rss_end:.1f} MB, {series_end} series", flush=True)
    finally:
        if agent is not None:
            agent.terminate()
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                agent.kill()
        broker.stop()
    growth = 100.0 * (rss_end - rss_mid) / rss_mid
    first = cycles // 2 + 1
    res.rows += [
        at_most(f"peak RSS: highest 20 ms reading during collections {first} to {cycles} "
                f"({scenario.groups} groups: {churned.start}-{churned.stop - 1}, with the churned ones, left out; single run)",
                late_peak, TARGET_PEAK_MB, "MB"),
        at_most(f"trough RSS: highest of the per-gap minima between collections, cycles {first} to {cycles} (same groups; single run)",
                late_trough, TARGET_TROUGH_MB, "MB"),
        info(f"RSS between collections at cycle {cycles} (median of the per-gap minima of the last {LEVEL_WINDOW})", rss_end, "MB"),
        below(f"RSS growth between collections, cycle {cycles // 2} to {cycles} (medians of {LEVEL_WINDOW} per-gap minima)",
              growth, TARGET_GROWTH_PCT),
        Row(f"series after the {churn} groups left vs before", series_end, "", f"= {series_before}",
            series_end == series_before and not leftovers),
        below(f"RSS between collections at cycle {cycles} over that before the churn (cycle {churn_at}; medians of {LEVEL_WINDOW} per-gap minima)",
              100.0 * (rss_end - rss_before) / rss_before, TARGET_RETURN_PCT),
        info(f"peak RSS during the collections with the {churn} churned groups ({churned.start}-{churned.stop - 1}; "
             f"{scenario.groups + churn} groups)", churn_peak, "MB"),
    ]
    res.details += [
        f"Scenario: {scenario.describe()}. The agent runs as `mqwatch run` with interval {interval:g} s; "
        f"RSS is read with psutil every 20 ms (a peak shorter than that can be missed). After cycle c completes, the "
        f"lowest reading until cycle c + 1 completes is the trough after c, the highest is the peak of collection c + 1. "
        f"{churn} extra groups commit offsets on one topic each after cycle {churn_at} and are deleted once seen. "
        f"Load average (1 min) at start and end: {load[0]:.1f}, {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        "| cycle c | RSS readings after c | trough after c (MB) | peak of collection c + 1 (MB) | series at c |",
        "|---:|---:|---:|---:|---:|",
    ]
    shown = sorted({1, churn_at, peak["collections"], back["collections"], cycles // 2, cycles} & set(w.samples) |
                   {min(c for c in w.samples if c >= x) for x in (churn_at, cycles // 2, cycles)})
    for c in shown:
        rss, series = w.samples[c]
        if w.complete(c):
            res.details.append(f"| {c} | {w.readings[c]} | {w.lows[c]:.1f} | {w.peaks[c]:.1f} | {series} |")
        else:  # the watcher stopped reading before the next cycle: no trough or peak to claim
            res.details.append(f"| {c} | {w.readings.get(c, 0)} | (not watched to the end) | | {series} |")
    res.details.append(f"\nSeries counts after the churned groups were gone: min {min(after)}, max {max(after)} "
                       f"(before the churn: {series_before}).")
    if leftovers:
        res.details.append(f"\nSeries of deleted groups still exported at cycle {cycles}: {', '.join(leftovers[:5])}")
    return res
