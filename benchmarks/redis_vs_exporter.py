"""mqwatch's Redis collection vs a plain redis-py floor and Debian's prometheus-redis-exporter.

    .venv/bin/python -m benchmarks.redis_vs_exporter [--lists 5000 --zsets 4900 --streams 100 --cache 1000000 --runs 3]

One redis-server on loopback holds LIST queues `jobs:*`, due-time ZSETs `delay:*` (a share
overdue) and STREAMs `stream:*` with two consumer groups each; the second scenario adds
`--cache` unrelated string keys `cache:*` (a production keyspace where queues are a sliver).
Three sides answer "what do these patterns hold", each timed from request to rendered answer:

- prometheus-redis-exporter with `-check-keys 'jobs:*,delay:*' -check-streams 'stream:*'`:
  an HTTP scrape of its /metrics (one round trip per key and read).
- the floor: plain redis-py doing what mqwatch must do and nothing more: one SCAN walk per
  pattern without knowing types, one pipelined TYPE round, then the reads in pipelined rounds
  (LLEN; ZCARD + head, ZCOUNT of overdue heads; XINFO STREAM/GROUPS, then per group the first
  undelivered entry, XPENDING and XINFO CONSUMERS), rendered as exposition lines. Its answer
  is checked equal to mqwatch's.
- mqwatch: one full collection through the Collector that `mqwatch run` uses, with a fresh
  check (new connection) each time, published to an Exporter (rendered /metrics body), with
  the same patterns (`keys` = the three globs, no `dlq_keys`, no framework discovery).

Machines here are noisy: the sides run alternately in one run and the minimum of several runs
is compared. Targets: mqwatch <= 0.5x the exporter (issue 13 item 9), <= 1.3x the floor (issue 15).
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

from mqwatch.agent.app import build_check
from mqwatch.agent.config import parse_config
from mqwatch.agent.embedded import free_port, wait_for_port
from mqwatch.agent.exposition import render_snapshot
from mqwatch.agent.scheduler import Collector
from mqwatch.checks.redis.embedded import start_redis

TARGET = 0.5  # vs the exporter
FLOOR_TARGET = 1.3  # vs the floor
EXPORTER = "/usr/bin/prometheus-redis-exporter"
PATTERNS = ("jobs:*", "delay:*", "stream:*")
SCAN_COUNT = 1000  # mqwatch's default scan_count, also given to the floor

# Writes n unrelated keys server-side, in slices so the server never blocks for long.
_FILL = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do redis.call('SET', 'cache:' .. i, 'v') end
return 1
"""


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


def add_cache_keys(r: redis.Redis, n: int) -> None:
    step = 50_000
    for start in range(0, n, step):
        r.eval(_FILL, 0, start, min(n, start + step) - 1)


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
    text = requests.get(url, timeout=300).text
    return time.perf_counter() - t0, text


def collect(redis_port: int):
    """mqwatch: request -> collection -> rendered exposition text (what the agent renders once per
    collection and serves; gzip is left out on both sides)."""
    doc = {"checks": [{"kind": "redis", "name": "bench", "url": f"redis://127.0.0.1:{redis_port}/0",
                       "timeout": "120s", "max_keys": 100000, "max_scan_calls": 1000000, "scan_count": SCAN_COUNT,
                       "keys": list(PATTERNS), "dlq_keys": [], "frameworks": []}]}
    check = build_check(parse_config(yaml.safe_dump(doc), "bench.yaml").checks[0])
    defs = {m.name: m for m in check.metrics}
    try:
        t0 = time.perf_counter()
        snap = Collector(check, 120).collect()
        text = b"".join(piece for pieces in render_snapshot(snap, defs.__getitem__).values() for piece in pieces).decode()
        return time.perf_counter() - t0, snap, text
    finally:
        check.close()


# ---- the floor -----------------------------------------------------------------------------
def _after(stream_id: bytes) -> str:
    ms, _, seq = stream_id.decode().partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def floor(redis_port: int) -> tuple[float, dict, str]:
    """The least a client must do for mqwatch's answer: returns (seconds, answer, rendered text)."""
    t0 = time.perf_counter()
    r = redis.Redis(port=redis_port)
    try:
        keys: dict = {}
        for pattern in PATTERNS:
            for k in r.scan_iter(match=pattern, count=SCAN_COUNT):
                keys.setdefault(k, None)
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.type(k)
        kinds = pipe.execute()
        now = time.time()
        lists, zsets, streams = [], [], []
        for k, t in zip(keys, kinds):
            (lists if t == b"list" else zsets if t == b"zset" else streams if t == b"stream" else []).append(k)
        for k in lists:
            pipe.llen(k)
        for k in zsets:
            pipe.zcard(k)
            pipe.zrange(k, 0, 0, withscores=True)
        for k in streams:
            pipe.xinfo_stream(k)
            pipe.xinfo_groups(k)
        replies = iter(pipe.execute())
        answer: dict = {}
        for k in lists:
            answer[("queue", k)] = next(replies)
        overdue = []
        for k in zsets:
            card, head = next(replies), next(replies)
            answer[("delayed", k)] = [card, 0, 0.0]
            if head and head[0][1] <= now:
                overdue.append((k, head[0][1]))
                pipe.zcount(k, "-inf", now)
        groups = []
        for k in streams:
            info, gs = next(replies), next(replies)
            answer[("queue", k)] = info["length"]
            for g in gs:
                groups.append((k, g))
                pipe.xrange(k, _after(g["last-delivered-id"]), "+", 1)
                pipe.xpending(k, g["name"])
                pipe.xinfo_consumers(k, g["name"])
        replies = iter(pipe.execute())
        for k, due in overdue:
            answer[("delayed", k)][1:] = [next(replies), now - due]
        for k, g in groups:
            first, pending, consumers = next(replies), next(replies), next(replies)
            lag_s = now - int(first[0][0].split(b"-")[0]) / 1000 if first else 0.0
            oldest = now - int(pending["min"].split(b"-")[0]) / 1000 if pending["pending"] else 0.0
            idle = min(c["idle"] for c in consumers) / 1000 if consumers else None
            answer[("group", k, g["name"])] = (g["lag"], pending["pending"], lag_s, oldest, len(consumers), idle)
        text = _render(answer)
    finally:
        r.close()
    return time.perf_counter() - t0, answer, text


def _render(answer: dict) -> str:
    lines = []
    for key, v in answer.items():
        q = key[1].decode()
        if key[0] == "queue":
            lines.append(f'mqwatch_queue_messages{{queue="{q}"}} {v}\n')
        elif key[0] == "delayed":
            lines.append(f'mqwatch_delayed_messages{{queue="{q}"}} {v[0]}\n'
                         f'mqwatch_delayed_overdue_messages{{queue="{q}"}} {v[1]}\n'
                         f'mqwatch_delayed_overdue_seconds{{queue="{q}"}} {v[2]}\n')
        else:
            lb = f'{{queue="{q}",consumer="{key[2].decode()}"}}'
            lag, pending, lag_s, oldest, members, idle = v
            lines.append(f"mqwatch_consumer_lag_messages{lb} {lag}\nmqwatch_consumer_lag_seconds{lb} {lag_s}\n"
                         f"mqwatch_pending_messages{lb} {pending}\nmqwatch_pending_oldest_seconds{lb} {oldest}\n"
                         f"mqwatch_consumer_members{lb} {members}\nmqwatch_consumer_idle_seconds{lb} {idle}\n")
    return "".join(lines)


def mqwatch_answer(snap) -> dict:
    """mqwatch's snapshot in the floor's terms (counts only: ages differ by the time between reads)."""
    answer: dict = {}
    for labels, v in snap.samples("mqwatch_queue_messages"):
        answer[("queue", labels["queue"].encode())] = int(v)
    delayed = {}
    for name, i in (("mqwatch_delayed_messages", 0), ("mqwatch_delayed_overdue_messages", 1)):
        for labels, v in snap.samples(name):
            delayed.setdefault(labels["queue"].encode(), [0, 0])[i] = int(v)
    for k, v in delayed.items():
        answer[("delayed", k)] = v
    for labels, v in snap.samples("mqwatch_consumer_lag_messages"):
        pending = snap.value("mqwatch_pending_messages", queue=labels["queue"], consumer=labels["consumer"])
        answer[("group", labels["queue"].encode(), labels["consumer"].encode())] = (int(v), int(pending))
    return answer


def comparable(floor_answer: dict) -> dict:
    out = {}
    for key, v in floor_answer.items():
        if key[0] == "queue":
            out[key] = int(v)
        elif key[0] == "delayed":
            out[key] = [int(v[0]), int(v[1])]
        else:
            out[key] = (int(v[0]), int(v[1]))
    return out


# ---- one scenario ------------------------------------------------------------------------------
def measure(port: int, url: str, runs: int) -> dict:
    scrape(url), collect(port), floor(port)  # warm all up (connections, imports)
    ex, mq, fl = [], [], []
    for _ in range(runs):
        t, ex_text = scrape(url)
        ex.append(t)
        t, snap, _ = collect(port)
        mq.append(t)
        t, answer, _ = floor(port)
        fl.append(t)
    if not snap.ok:
        raise SystemExit(f"mqwatch collection failed: {snap.error}")
    mine, theirs = mqwatch_answer(snap), comparable(answer)
    if mine != theirs:
        diff = [k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)][:5]
        raise SystemExit(f"mqwatch and the floor disagree on {len(diff)}+ series, e.g. "
                         + "; ".join(f"{k}: mqwatch {mine.get(k)} floor {theirs.get(k)}" for k in diff))
    return {"keys": None, "exporter_min": min(ex), "mqwatch_min": min(mq), "floor_min": min(fl),
            "ratio": min(mq) / min(ex), "floor_ratio": min(mq) / min(fl),
            "exporter_series": exporter_summary(ex_text), "snapshot": snap, "series_checked": len(mine)}


def exporter_summary(text: str) -> dict:
    names: dict = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name.startswith(("redis_key_", "redis_stream_")):
                names[name] = names.get(name, 0) + 1
    return names


def run(lists: int, zsets: int, streams: int, runs: int, cache: int = 0, cache_runs: int | None = None) -> dict:
    """Both scenarios on one server: the queue keys alone, then among `cache` unrelated keys."""
    if not shutil.which(EXPORTER):
        raise SystemExit(f"{EXPORTER} is missing: apt-get install prometheus-redis-exporter")
    server = start_redis()
    exporter = None
    try:
        r = redis.Redis(port=server.port)
        populate(r, lists, zsets, streams)
        exporter, url = start_exporter(server.port)
        scenarios = {}
        scenarios["queues"] = measure(server.port, url, runs)
        scenarios["queues"]["keys"] = r.dbsize()
        if cache:
            add_cache_keys(r, cache)
            scenarios["cache"] = measure(server.port, url, cache_runs or runs)
            scenarios["cache"]["keys"] = r.dbsize()
        return scenarios
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(10)
        server.stop()


def report_one(name: str, result: dict) -> str:
    snap = result["snapshot"]

    def count(metric, pred=lambda v: True):
        return sum(1 for _, v in snap.samples(metric) if pred(v))

    overdue = count("mqwatch_delayed_overdue_messages", lambda v: v > 0)
    verdict = lambda ok: "MET" if ok else "MISSED"  # noqa: E731
    return "\n".join([
        f"[{name}] keyspace: {result['keys']} keys",
        f"prometheus-redis-exporter scrape: min {result['exporter_min'] * 1000:.1f} ms",
        f"floor (redis-py, pipelined):      min {result['floor_min'] * 1000:.1f} ms",
        f"mqwatch collection + render:      min {result['mqwatch_min'] * 1000:.1f} ms",
        f"ratio mqwatch/exporter: {result['ratio']:.3f}  (target <= {TARGET})  {verdict(result['ratio'] <= TARGET)}",
        f"ratio mqwatch/floor:    {result['floor_ratio']:.3f}  (target <= {FLOOR_TARGET})  "
        f"{verdict(result['floor_ratio'] <= FLOOR_TARGET)}",
        f"answers equal: mqwatch and the floor agree on {result['series_checked']} queues, delayed queues and groups",
        "exporter reports: " + ", ".join(f"{k} x{v}" for k, v in sorted(result["exporter_series"].items())),
        f"mqwatch reports: {snap.series} series, among them {count('mqwatch_delayed_overdue_seconds')} delayed queues "
        f"({overdue} overdue), {count('mqwatch_consumer_lag_seconds')} stream-group lag ages, "
        f"{count('mqwatch_pending_oldest_seconds')} pending ages: signals the exporter has no series for",
    ])


def report(scenarios: dict) -> str:
    return "\n\n".join(report_one(name, r) for name, r in scenarios.items())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lists", type=int, default=5000)
    p.add_argument("--zsets", type=int, default=4900)
    p.add_argument("--streams", type=int, default=100)
    p.add_argument("--cache", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cache-runs", type=int, default=3)
    a = p.parse_args(argv)
    scenarios = run(a.lists, a.zsets, a.streams, a.runs, a.cache, a.cache_runs)
    print(report(scenarios))
    ok = all(r["ratio"] <= TARGET and r["floor_ratio"] <= FLOOR_TARGET for r in scenarios.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
