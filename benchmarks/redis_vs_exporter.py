"""mqwatch's Redis collection vs Debian's prometheus-redis-exporter on the same keyspace.

    .venv/bin/python -m benchmarks.redis_vs_exporter [--lists 5000 --zsets 4900 --streams 100 --runs 5]

One redis-server on loopback holds LIST queues `jobs:*`, due-time ZSETs `delay:*` (a share
overdue) and STREAMs `stream:*` with two consumer groups each. The exporter runs with
`-check-keys 'jobs:*,delay:*' -check-streams 'stream:*'`; a scrape of its /metrics is timed.
mqwatch runs one full collection through the Collector that `mqwatch run` uses, with a fresh
check (new connection) each time. Machines here are noisy: both are measured alternately in
the same run, and the minimum of several runs is compared. Target (perf issue, item 2): <= 0.5.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

import redis
import requests

import yaml

from agent.app import build_check
from agent.config import parse_config
from agent.embedded import free_port, wait_for_port
from agent.scheduler import Collector
from checks.redis.embedded import start_redis

TARGET = 0.5
EXPORTER = "/usr/bin/prometheus-redis-exporter"


def populate(r: redis.Redis, lists: int, zsets: int, streams: int) -> None:
    now = time.time()
    pipe = r.pipeline(transaction=False)
    for i in range(lists):
        pipe.rpush(f"jobs:{i}", *[f"job-{i}-{n}" for n in range(1 + i % 5)])
        if i % 500 == 499:
            pipe.execute()
    for i in range(zsets):
        # every tenth delayed queue has entries overdue by up to 5 minutes: a stopped poller
        dues = {f"t-{i}-{n}": now + 60 * (n + 1) - (360 if i % 10 == 0 else 0) for n in range(5)}
        pipe.zadd(f"delay:{i}", dues)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    for i in range(streams):
        key = f"stream:{i}"
        for n in range(20):
            pipe.xadd(key, {"n": n})
        pipe.execute()
        r.xgroup_create(key, "billing", id="0")
        r.xgroup_create(key, "audit", id="0")
        r.xreadgroup("billing", "worker", {key: ">"}, count=10)
        r.xreadgroup("audit", "worker", {key: ">"}, count=3)


def start_exporter(redis_port: int):
    port = free_port()
    proc = subprocess.Popen(
        [EXPORTER, "-redis.addr", f"redis://127.0.0.1:{redis_port}", "-web.listen-address", f"127.0.0.1:{port}",
         "-check-keys", "jobs:*,delay:*", "-check-streams", "stream:*"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 15.0, proc)
    return proc, f"http://127.0.0.1:{port}/metrics"


def scrape(url: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    text = requests.get(url, timeout=120).text
    return time.perf_counter() - t0, text


def collect(redis_port: int):
    doc = {"checks": [{"kind": "redis", "name": "bench", "url": f"redis://127.0.0.1:{redis_port}/0",
                       "timeout": "60s", "max_keys": 100000}]}
    check = build_check(parse_config(yaml.safe_dump(doc), "bench.yaml").checks[0])
    try:
        t0 = time.perf_counter()
        snap = Collector(check, 60).collect()
        return time.perf_counter() - t0, snap
    finally:
        check.close()


def exporter_summary(text: str) -> dict:
    names: dict = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name.startswith(("redis_key_", "redis_stream_")):
                names[name] = names.get(name, 0) + 1
    return names


def run(lists: int, zsets: int, streams: int, runs: int) -> dict:
    if not shutil.which(EXPORTER):
        raise SystemExit(f"{EXPORTER} is missing: apt-get install prometheus-redis-exporter")
    server = start_redis()
    exporter = None
    try:
        r = redis.Redis(port=server.port)
        populate(r, lists, zsets, streams)
        keys = r.dbsize()
        exporter, url = start_exporter(server.port)
        scrape(url), collect(server.port)  # warm both up (connections, imports)
        ex_times, mq_times = [], []
        for _ in range(runs):
            t, ex_text = scrape(url)
            ex_times.append(t)
            t, snap = collect(server.port)
            mq_times.append(t)
        if not snap.ok:
            raise SystemExit(f"mqwatch collection failed: {snap.error}")
        ratio = min(mq_times) / min(ex_times)
        return {"keys": keys, "exporter_min": min(ex_times), "mqwatch_min": min(mq_times), "ratio": ratio,
                "exporter_series": exporter_summary(ex_text), "snapshot": snap}
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(10)
        server.stop()


def report(result: dict) -> str:
    snap = result["snapshot"]

    def count(name, pred=lambda v: True):
        return sum(1 for _, v in snap.samples(name) if pred(v))

    overdue = count("mqwatch_delayed_overdue_messages", lambda v: v > 0)
    lines = [
        f"keyspace: {result['keys']} keys",
        f"prometheus-redis-exporter scrape: min {result['exporter_min'] * 1000:.1f} ms",
        f"mqwatch collection:               min {result['mqwatch_min'] * 1000:.1f} ms",
        f"ratio mqwatch/exporter: {result['ratio']:.3f}  (target <= {TARGET})  "
        f"{'MET' if result['ratio'] <= TARGET else 'MISSED'}",
        "exporter reports: " + ", ".join(f"{k} x{v}" for k, v in sorted(result["exporter_series"].items())),
        f"mqwatch reports: {snap.series} series, among them {count('mqwatch_delayed_overdue_seconds')} delayed queues "
        f"({overdue} overdue), {count('mqwatch_consumer_lag_seconds')} stream-group lag ages, "
        f"{count('mqwatch_pending_oldest_seconds')} pending ages: signals the exporter has no series for",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lists", type=int, default=5000)
    p.add_argument("--zsets", type=int, default=4900)
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args(argv)
    result = run(a.lists, a.zsets, a.streams, a.runs)
    print(report(result))
    return 0 if result["ratio"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
