"""Benchmark 5: memory and steadiness of a running agent on the Kafka 10k scenario.

`mqwatch run` runs as its own process against the benchmark-1 scenario, with an interval
that leaves it idle between collections. Its memory and series count are read right after
every cycle, and memory every 20 ms. A container's memory limit must fit the PEAK, so the
judged figure is the highest reading during collections 51 to 100 of the scenario's 50 groups;
the trough (the level held between collections, after the post-publish trim) is judged
beside it. After CHURN_AT cycles, 500 extra groups commit offsets, are seen, and are deleted
again; the series count must come back to exactly its level and memory close to it. The
collections with the churned groups present have their own peak row (550 groups, not the
scenario's 50), so they are left out of the judged peak.

Memory is that of the agent's whole process tree, as a container limit must fit it: the
agent's RSS plus each child's USS (the HTTP server runs in a serving child, agent/front.py;
the Kafka check reads records in another, checks/kafka/readerprocess.py). A child is a fresh
interpreter, not a fork: the only pages it shares are the libraries' file pages (libpython,
librdkafka, libc...), which the agent maps too and its RSS already counts, so its USS adds
each page once. Summed RSS would count those libraries twice (13 MB); summed PSS would split
them with any unrelated process on the machine that maps the same files, so it would fall as
the machine gets busier. The serving child maps each /metrics body from a memfd and its pages
enter its RSS only as scrapes read them; the part not read yet is added (it is in memory all
the same, as shmem).

The child ends IDLE_EXIT s after its last read. The agent reads records in its first cycles
(lag in seconds of committed offsets its end-offset history cannot date yet) and when the
churned groups appear; the collections from the churn until that child has ended are left
out of the judged rows with the churn, and reported in their own row. After that no reader
child may be alive: a judged row counts the readings that saw one.
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
from mqwatch.agent.front import BODY_NAME
from benchmarks.kafka_scenario import KafkaScenario, build
from benchmarks.report import Result, Row, at_most, below, info
from mqwatch.checks.kafka.embedded import start_tansu
from mqwatch.checks.kafka.readerprocess import IDLE_EXIT

READER_MODULE = "mqwatch.checks.kafka.readerprocess"
FRONT_MODULE = "mqwatch.agent.front"

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
{extra}"""
# Smoke runs read no records: a reader child outlives its last read by IDLE_EXIT s, longer
# than a whole smoke run, and smoke runs only keep this code from rotting.
SMOKE_EXTRA = "    time_lag: off\n"


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


def _unfaulted_bodies(child: psutil.Process) -> int:
    """Bytes of the /metrics bodies the serving child has mapped but not yet read: they are in
    memory (shmem, in the container's usage) though not yet in its RSS (agent/front.py)."""
    return sum(m.size - m.rss for m in child.memory_maps(grouped=False) if BODY_NAME in m.path)


class _Watcher:
    """Reads the memory of the agent's process tree and its series count once per completed cycle."""

    def __init__(self, port: int, pid: int):
        self.port, self.proc = port, psutil.Process(pid)
        self.samples: dict[int, tuple[float, int]] = {}  # cycle -> (MB, series), read just after it
        self.peaks: dict[int, float] = {}  # cycle -> highest reading until the next one completed
        self.lows: dict[int, float] = {}  # cycle -> lowest reading until the next one completed: the trough
        self.readings: dict[int, int] = {}  # cycle -> readings taken while it was the latest
        self.with_child: dict[int, int] = {}  # cycle -> of those, readings that saw a reader child alive

    def memory(self) -> tuple[float, bool]:
        """MB of the agent's RSS plus its children's USS (see the module's doc), and whether a
        reader child is alive (the serving child always is)."""
        total = self.proc.memory_info().rss
        reader = False
        for child in self.proc.children(recursive=True):
            try:
                total += child.memory_full_info().uss + _unfaulted_bodies(child)
                reader = reader or READER_MODULE in child.cmdline()
            except psutil.Error:  # ended between the two calls
                pass
        return total / 2**20, reader

    def serving_child(self) -> float:
        """MB of the serving child (USS and unread bodies), as counted in memory()."""
        for child in self.proc.children():
            if any(FRONT_MODULE in part for part in child.cmdline()):
                return (child.memory_full_info().uss + _unfaulted_bodies(child)) / 2**20
        return math.nan

    def until(self, predicate, timeout: float = 600.0, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = _status(self.port)
            n = st["collections"]
            rss, child = self.memory()
            self.peaks[n] = max(rss, self.peaks.get(n, 0.0))
            self.lows[n] = min(rss, self.lows.get(n, rss))
            self.readings[n] = self.readings.get(n, 0) + 1
            self.with_child[n] = self.with_child.get(n, 0) + child
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

    def child_gone(self, after: int) -> int | None:
        """The first cycle from `after` on whose whole gap saw no reader child, or None."""
        return next((c for c in sorted(self.readings) if c >= after and self.complete(c) and not self.with_child[c]), None)

    def peak(self, first: int, last: int, skip: range = range(0)) -> float:
        """Highest reading during collections `first` to `last`: collection k runs while the
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
            fh.write(CONFIG.format(port=port, bootstrap=broker.address, interval=interval, extra=SMOKE_EXTRA if smoke else ""))
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
        serving_mb = w.serving_child()
        exposition = _metrics(port)
        leftovers = [g for g in churn_ids if f'consumer="{g}"' in exposition]
        after = [series for c, (_, series) in w.samples.items() if c > back["collections"]]
        rss_mid, rss_end, series_end = w.level(cycles // 2), w.level(cycles), w.at(cycles)[1]
        # Collections that saw (or may have seen) the churned groups, and those until the reader
        # child their record reads started had ended (IDLE_EXIT s after the last read).
        gone = w.child_gone(back["collections"])
        churned = range(churn_at + 2, (cycles if gone is None else gone) + 1)
        churn_peak = w.peak(churned.start, churned.stop - 1)
        late_peak = w.peak(cycles // 2 + 1, cycles, skip=churned)
        late_trough = w.trough(cycles // 2 + 1, cycles, skip=churned)
        first_peak, first_gone = w.peak(1, cycles // 2), w.child_gone(1)
        lingering = sum(n for c, n in w.with_child.items() if c >= (cycles if gone is None else gone))
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
    tree = "agent RSS + children's USS and unread bodies"
    left_out = f"{churned.start}-{churned.stop - 1}: with the churned groups, and until the reader child their reads started had ended"
    res.rows += [
        at_most(f"peak memory ({tree}): highest 20 ms reading during collections {first} to {cycles} "
                f"({scenario.groups} groups; {left_out}, left out; single run)", late_peak, TARGET_PEAK_MB, "MB"),
        at_most(f"trough memory ({tree}): highest of the per-gap minima between collections, cycles {first} to {cycles} "
                f"(same collections; single run)", late_trough, TARGET_TROUGH_MB, "MB"),
        Row(f"readings with a reader child alive from cycle {cycles if gone is None else gone} on (no record reads "
            f"once the churned groups were dated; the child ends {IDLE_EXIT:g} s after its last read)",
            lingering, "", "= 0", lingering == 0),
        info(f"memory between collections at cycle {cycles} (median of the per-gap minima of the last {LEVEL_WINDOW})", rss_end, "MB"),
        info(f"of which the serving child (HTTP server, agent/front.py: USS and unread body), after cycle {cycles}",
             serving_mb, "MB"),
        below(f"memory growth between collections, cycle {cycles // 2} to {cycles} (medians of {LEVEL_WINDOW} per-gap minima)",
              growth, TARGET_GROWTH_PCT),
        Row(f"series after the {churn} groups left vs before", series_end, "", f"= {series_before}",
            series_end == series_before and not leftovers),
        below(f"memory between collections at cycle {cycles} over that before the churn (cycle {churn_at}; medians of {LEVEL_WINDOW} per-gap minima)",
              100.0 * (rss_end - rss_before) / rss_before, TARGET_RETURN_PCT),
        info(f"peak memory during collections 1 to {cycles // 2} (the first cycles read records in a reader child; "
             f"none from cycle {'> ' + str(cycles // 2) if first_gone is None or first_gone > cycles // 2 else first_gone} on)",
             first_peak, "MB"),
        info(f"peak memory during collections {churned.start}-{churned.stop - 1} ({scenario.groups + churn} groups until "
             f"{back['collections']}, then the reader child the churned groups' reads started, until it ended)", churn_peak, "MB"),
    ]
    res.details += [
        f"Scenario: {scenario.describe()}. The agent runs as `mqwatch run` with interval {interval:g} s; "
        f"Memory ({tree}, see benchmarks/README.md) is read with psutil every 20 ms (a peak shorter than that can be "
        f"missed). After cycle c completes, the lowest reading until cycle c + 1 completes is the trough after c, the "
        f"highest is the peak of collection c + 1. "
        f"{churn} extra groups commit offsets on one topic each after cycle {churn_at} and are deleted once seen. "
        f"Load average (1 min) at start and end: {load[0]:.1f}, {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        "| cycle c | readings after c | with a reader child | trough after c (MB) | peak of collection c + 1 (MB) | series at c |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    marks = {1, churn_at, peak["collections"], back["collections"], cycles // 2, cycles} | {c - 1 for c in (first_gone, gone) if c}
    shown = sorted(marks & set(w.samples) | {min(c for c in w.samples if c >= x) for x in (churn_at, cycles // 2, cycles)})
    for c in shown:
        rss, series = w.samples[c]
        if w.complete(c):
            res.details.append(f"| {c} | {w.readings[c]} | {w.with_child[c]} | {w.lows[c]:.1f} | {w.peaks[c]:.1f} | {series} |")
        else:  # the watcher stopped reading before the next cycle: no trough or peak to claim
            res.details.append(f"| {c} | {w.readings.get(c, 0)} | {w.with_child.get(c, 0)} | (not watched to the end) | | {series} |")
    res.details.append(f"\nSeries counts after the churned groups were gone: min {min(after)}, max {max(after)} "
                       f"(before the churn: {series_before}).")
    if leftovers:
        res.details.append(f"\nSeries of deleted groups still exported at cycle {cycles}: {', '.join(leftovers[:5])}")
    return res
