"""Benchmark 6: soak. A running agent (`mqwatch run`, its own process) at a 0.2 s interval on
real tansu, Redis and pulsar-lite while Kafka consumer groups, Redis queues, delayed sets,
streams with groups and DLQ keys are created and deleted all the time, and records keep
arriving on a Kafka topic and its dead-letter topic. The Pulsar check runs alongside, steady:
pulsar-lite keeps exporting a subscription after it is unsubscribed, so churned Pulsar
subscriptions could never leave the broker's /metrics, whatever mqwatch does.

Kafka topics are not deleted: with confluent-kafka 2.16.1 (librdkafka 2.16.0) on tansu,
deleting topics while the agent collects makes librdkafka segfault in its metadata cache
(rd_kafka_metadata_update_op -> rd_kafka_metadata_cache_find -> strcmp on NULL, thread
rdk:main), which ends the agent process. Not fixed here; see the benchmark's details.

After a warm-up (the status page's 60-point history fills, caches settle), the agent's RSS,
open file descriptors and threads are read every cycle; the level at the start of the churn
is compared with the level at its end (medians over a window of cycles), growth must stay
under 5 %. When the churn stops and its objects are deleted, the series count must come back
to exactly its level before the churn.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import psutil

from mqwatch.agent.embedded import free_port, wait_for_port
from benchmarks.report import Result, Row, below, info
from mqwatch.checks.kafka.embedded import start_tansu
from mqwatch.checks.pulsar.embedded import start_pulsar_lite
from mqwatch.checks.redis.embedded import start_redis

TITLE = "6. Soak: 2,000 cycles at 0.2 s with consumer groups, queues, streams and DLQ keys churned all the time"
CYCLES = 2000
INTERVAL = 0.2
WARMUP = 200  # cycles; the status page history holds 60 points per series
WINDOW = 50  # cycles a level is the median over
LIVE = 8  # churned objects of each kind alive at once; older ones are deleted
TARGET_GROWTH_PCT = 5.0

CONFIG = """agent:
  listen: 127.0.0.1:{port}
  interval: {interval}s
  timeout: 2s
  log_level: warning
checks:
  - kind: kafka
    name: soak
    bootstrap_servers: {kafka}
  - kind: redis
    name: soak
    url: redis://127.0.0.1:{redis}/0
    keys: ['jobs:*', 'delay:*', 'stream:*']
    dlq_keys: ['*:dead']
    frameworks: []
  - kind: pulsar
    name: soak
    metrics_url: [{pulsar_metrics}]
"""


def _series_names(exposition: str) -> set[str]:
    """The mqwatch series (name and labels) of an exposition, without values or process metrics."""
    return {ln.rsplit(" ", 1)[0] for ln in exposition.splitlines() if ln.startswith("mqwatch_")
            and not ln.startswith(("mqwatch_collect_duration", "mqwatch_last_success", "mqwatch_collect_errors"))}


def _get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read()


class Churn:
    """Creates one object of each kind per step and deletes the one created LIVE steps before."""

    def __init__(self, kafka: str, redis_port: int):
        import redis
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        self.kafka = kafka
        self.admin = AdminClient({"bootstrap.servers": kafka})
        self.producer = Producer({"bootstrap.servers": kafka, "batch.num.messages": 1})
        self.r = redis.Redis(port=redis_port)
        self.step = 0
        self.live: list[int] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, period: float) -> None:
        def loop():
            while not self._stop.is_set():
                try:
                    self.once()
                except Exception:  # a broker hiccup must not end the churn; counted
                    self.errors += 1
                self._stop.wait(period)
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_and_clean(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        while self.live:
            self._delete(self.live.pop(0))

    def once(self) -> None:
        n = self.step
        self.step += 1
        self._create(n)
        self.live.append(n)
        if len(self.live) > LIVE:
            self._delete(self.live.pop(0))

    def _create(self, n: int) -> None:
        from confluent_kafka import Consumer, TopicPartition

        # Kafka topics are not deleted (see the module docstring): groups come and go on a
        # steady topic while records keep arriving on it and on its dead-letter topic.
        self.producer.produce("soak-orders", b"x")
        self.producer.produce("soak-orders.DLT", b"x")
        self.producer.flush(10)
        c = Consumer({"bootstrap.servers": self.kafka, "group.id": f"churn-g-{n}", "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition("soak-orders", 0, 1)], asynchronous=False)
        c.close()
        p = self.r.pipeline()
        p.lpush(f"jobs:churn-{n}", "a", "b")
        p.zadd(f"delay:churn-{n}", {"j": time.time() + 60})
        p.xadd(f"stream:churn-{n}", {"k": "v"})
        p.xgroup_create(f"stream:churn-{n}", "workers", id="0")
        p.lpush(f"churn-{n}:dead", json.dumps({"error": "Timeout"}))
        p.execute()

    def _delete(self, n: int) -> None:
        for f in self.admin.delete_consumer_groups([f"churn-g-{n}"], request_timeout=10).values():
            f.result(10)
        self.r.delete(f"jobs:churn-{n}", f"delay:churn-{n}", f"stream:churn-{n}", f"churn-{n}:dead")

    def close(self) -> None:
        self.producer.flush(5)


class Readings:
    """Per completed cycle (the slowest check's count): RSS MB, open fds, threads, series."""

    def __init__(self, port: int, pid: int):
        self.port, self.proc = port, psutil.Process(pid)
        self.by_cycle: dict[int, tuple[float, int, int, int]] = {}

    def poll_until(self, cycle: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.is_running() or self.proc.status() == psutil.STATUS_ZOMBIE:
                raise RuntimeError(f"the agent exited (cycle {max(self.by_cycle, default=0)})")
            checks = json.loads(_get(self.port, "/status"))["checks"]
            n = min(c["collections"] for c in checks)
            if n and n not in self.by_cycle:
                self.by_cycle[n] = (self.proc.memory_info().rss / 2**20, self.proc.num_fds(), self.proc.num_threads(),
                                    sum(c["series"] or 0 for c in checks))
            if n >= cycle:
                return n
            time.sleep(INTERVAL / 4)
        raise RuntimeError(f"timed out waiting for cycle {cycle}")

    def level(self, first: int, last: int, field: int) -> float:
        values = [v[field] for c, v in self.by_cycle.items() if first <= c <= last]
        return statistics.median(values)


def run(smoke: bool = False) -> Result:
    cycles, warmup, window = (40, 10, 5) if smoke else (CYCLES, WARMUP, WINDOW)
    res = Result("soak", TITLE)
    kafka, redis_server, pulsar_broker = start_tansu(), start_redis(), start_pulsar_lite()
    agent = churn = None
    workdir = tempfile.mkdtemp(prefix="mqwatch-soak-")
    try:
        import pulsar

        client = pulsar.Client(pulsar_broker.extra["service_url"], logger=__import__("logging").getLogger("bench.soak.pulsar"))
        from confluent_kafka.admin import AdminClient, NewTopic

        setup = AdminClient({"bootstrap.servers": kafka.address})
        for f in setup.create_topics([NewTopic("soak-orders", 1, 1), NewTopic("soak-orders.DLT", 1, 1)]).values():
            f.result(10)
        client.create_producer("soak-orders").send(b"x")
        # Subscribed after the message: a caught-up subscription, whose lag in seconds is a steady 0.
        client.subscribe("soak-orders", "steady").close()
        from confluent_kafka import Producer

        seed = Producer({"bootstrap.servers": kafka.address})
        for t in ("soak-orders", "soak-orders.DLT"):  # the baseline has every steady series
            seed.produce(t, b"x")
        seed.flush(10)
        client.close()
        port = free_port()
        cfg = os.path.join(workdir, "mqwatch.yaml")
        with open(cfg, "w") as fh:
            fh.write(CONFIG.format(port=port, interval=INTERVAL, kafka=kafka.address, redis=redis_server.port,
                                   pulsar_metrics=pulsar_broker.extra["metrics_url"]))
        agent = subprocess.Popen([sys.executable, "-m", "mqwatch.agent", "run", "-c", cfg], stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(workdir, "agent.log"), "wb"))
        wait_for_port(port, 30, agent)
        rd = Readings(port, agent.pid)
        rd.poll_until(warmup, 600)
        time.sleep(2)  # pulsar-lite refreshes subscription stats every few seconds
        base = rd.poll_until(warmup + 10, 600)
        series_before = rd.by_cycle[base][3]
        names_before = _series_names(_get(port, "/metrics").decode())
        print(f"  cycle {base}: {series_before} series before the churn", flush=True)

        churn = Churn(kafka.address, redis_server.port)
        churn.start(INTERVAL)
        start = base + window  # the churned objects' series have appeared
        rd.poll_until(start + window, 1800)
        end_churn = cycles - 2 * window
        rd.poll_until(end_churn, 3600)
        peak_series = max(v[3] for c, v in rd.by_cycle.items() if start <= c <= end_churn)
        churn.stop_and_clean()
        print(f"  cycle {end_churn}: churn stopped after {churn.step} steps ({churn.errors} failed); objects deleted", flush=True)
        last = rd.poll_until(cycles, 1800)
        # pulsar-lite refreshes subscription stats every few seconds: give it time, then judge.
        deadline = time.monotonic() + 30
        while rd.by_cycle[max(rd.by_cycle)][3] != series_before and time.monotonic() < deadline:
            last = rd.poll_until(max(rd.by_cycle) + 1, 60)
        series_after = rd.by_cycle[max(rd.by_cycle)][3]
        exposition = _get(port, "/metrics").decode()
        leftovers = sorted(_series_names(exposition) - names_before)
        missing = sorted(names_before - _series_names(exposition))
        levels = {}
        for i, what in enumerate(("RSS", "open fds", "threads")):
            levels[what] = (rd.level(start, start + window, i), rd.level(end_churn - window, end_churn, i))
        agent_log = open(os.path.join(workdir, "agent.log"), errors="replace").read()
    finally:
        if churn is not None:
            churn.close()
        if agent is not None:
            agent.terminate()
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                agent.kill()
        for b in (kafka, redis_server, pulsar_broker):
            b.stop()
    for what, (early, late) in levels.items():
        unit = "MB" if what == "RSS" else ""
        res.rows.append(below(f"{what} growth under churn, cycles {start}-{start + window} to {end_churn - window}-{end_churn} "
                              f"(medians)", 100.0 * (late - early) / early, TARGET_GROWTH_PCT))
        res.rows.append(info(f"{what} at cycle {end_churn} (median of {window})", late, unit))
    res.rows.append(Row("series once the churned objects are gone vs before the churn", series_after, "",
                        f"= {series_before}", series_after == series_before and not leftovers))
    res.rows.append(info("highest series count during the churn", peak_series))
    res.details += [
        f"Three checks (Kafka on tansu, Redis, Pulsar on pulsar-lite) at interval {INTERVAL:g} s for {last} cycles of the "
        f"slowest check. From cycle {base}, every {INTERVAL:g} s one Kafka consumer group (and a record on `soak-orders` "
        f"and its `.DLT`), one Redis "
        f"list, delayed ZSET, stream with a group and DLQ list were created, and those of "
        f"{LIVE} steps before deleted ({churn.step} steps, {churn.errors} failed). Levels are medians over {window} cycles, "
        f"read with psutil after each cycle.",
        "",
        "| reading | cycles " + f"{start}-{start + window} | cycles {end_churn - window}-{end_churn} |",
        "|---|---:|---:|",
    ]
    for what, (early, late) in levels.items():
        res.details.append(f"| {what} | {early:.1f} | {late:.1f} |")
    res.details.append(f"\nSeries: {series_before} before the churn, up to {peak_series} during it, {series_after} after.")
    if leftovers:
        res.details.append(f"\nSeries exported after the churn that were not before it ({len(leftovers)}), first: "
                           + "; ".join(f"`{ln[:160]}`" for ln in leftovers[:5]))
    res.details.append("\nKafka topics are created once, not churned: deleting topics while the agent collects made "
                       "librdkafka 2.16.0 segfault in its metadata cache on tansu (rd_kafka_metadata_update_op -> "
                       "rd_kafka_metadata_cache_find), ending the agent; an open problem.")
    if missing:
        res.details.append(f"\nSeries exported before the churn and not after it ({len(missing)}): "
                           + "; ".join(f"`{ln[:160]}`" for ln in missing[:5]))
    errors = [ln for ln in agent_log.splitlines() if "collect_failed" in ln]
    res.details.append(f"\nFailed collections during the run: {len(errors)}" + (f" (first: `{errors[0][:200]}`)" if errors else ""))
    return res
