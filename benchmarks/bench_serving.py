"""Benchmark 4: serving /metrics with a snapshot of 100,000 series.

Three servers, each its own process, serve the same exposition to four concurrent
scraper processes for DURATION seconds: mqwatch as `mqwatch run` serves (the agent's
exporter renders, its serving child, agent/front.py, sends the pre-rendered bytes), the
floor (Python's http.server returning the same bytes from memory) and the common design
of rendering with prometheus-client's generate_latest at every scrape. Then mqwatch and
the floor again with gzip asked for, as Prometheus does.

What a user lives with is one Prometheus scraping while the agent collects, so the judged
figures are single-scraper: mqwatch's scrape latency while collections run back to back
(each builds and publishes a fresh 100k-series snapshot, render and gzip included, the
worst case of `mqwatch run`) against the same server idle, and generate_latest at scrape
time against mqwatch with one scraper (four scrapers queue on one render, which flatters
the ratio; that figure is kept beside it).

Idle and busy are one agent process whose collecting thread is switched on and off, in
alternating windows: on a shared machine the load drifts within seconds, and a p99 taken
over one 20 s stretch idle and the next 20 s busy compared two different machines.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time

from benchmarks.report import Result, Row, at_least, at_most, info

TITLE = "4. Serving /metrics: 100,000 series, idle and while collecting, 1 and 4 scrapers"
SERIES = 100_000
SCRAPERS = 4
DURATION = 20.0
TARGET_VS_FLOOR = 1.5
TARGET_VS_AT_SCRAPE = 20.0
TARGET_BUSY_VS_IDLE_P99 = 2.0
# Below this many latencies a 99th percentile is one of the last two readings: not reported.
MIN_P99_SAMPLES = 200


# Idle and busy alternate in this many windows each (DURATION split among them).
WINDOWS = 5


def _serve(kind: str, series: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.serve_target", kind, str(series)],
                            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"{kind} server did not start")
    return proc, int(line)


def _scrapers(kind: str, port: int, duration: float, want_gzip: bool, scrapers: int) -> list[dict]:
    start_at = time.time() + (1.0 if scrapers > 1 else 0.5)  # every scraper process is up before the clock starts
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.scraper", str(port), str(start_at), str(duration),
                               "gzip" if want_gzip else "plain"], stdout=subprocess.PIPE, text=True)
             for _ in range(scrapers)]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=duration + 300)
        if p.returncode != 0:
            raise RuntimeError(f"a scraper of {kind} failed")
        outs.append(json.loads(out))
    if any(o["status"] != [200] for o in outs):
        raise RuntimeError(f"{kind}: a scrape failed ({outs[0]['status']})")
    return outs


def _figures(kind: str, outs: list[dict], duration: float, scrapers: int) -> dict:
    lat = sorted(x for o in outs for x in o["latencies"])
    if not lat:
        raise RuntimeError(f"{kind}: no successful scrape")
    return {
        "scrapes": len(lat), "p50": statistics.median(lat), "p99": p99(lat),
        "per_second": len(lat) / duration, "bytes": outs[-1]["bytes"], "scrapers": scrapers,
    }


def scrape(kind: str, series: int, duration: float, want_gzip: bool, scrapers: int = SCRAPERS) -> dict:
    server, port = _serve(kind, series)
    try:
        outs = _scrapers(kind, port, duration, want_gzip, scrapers)
    finally:
        server.kill()
        server.wait()
    return _figures(kind, outs, duration, scrapers)


def idle_and_busy(series: int, duration: float, want_gzip: bool, windows: int = WINDOWS) -> tuple[dict, dict]:
    """One scraper on one mqwatch server, `duration` s idle and `duration` s collecting back to
    back, in alternating windows; the figures of each state over all its windows."""
    server, port = _serve("mqwatch-switchable", series)
    outs = {"idle": [], "collect": []}
    try:
        for _ in range(windows):
            for state in ("idle", "collect"):
                server.stdin.write(state + "\n")
                server.stdin.flush()
                if server.stdout.readline().strip() != "ok":
                    raise RuntimeError("the switchable server did not answer")
                outs[state] += _scrapers(f"mqwatch ({state})", port, duration / windows, want_gzip, 1)
    finally:
        server.kill()
        server.wait()
    return _figures("mqwatch", outs["idle"], duration, 1), _figures("mqwatch-busy", outs["collect"], duration, 1)


def p99(sorted_latencies: list[float]) -> float | None:
    """The 99th percentile (nearest rank), or None with too few samples for it to mean anything."""
    n = len(sorted_latencies)
    return sorted_latencies[min(n - 1, int(n * 0.99))] if n >= MIN_P99_SAMPLES else None


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.1f}"


def render_times(series: int) -> dict:
    """In-process: the cost of one publish (render once) against one generate_latest of the same snapshot."""
    from prometheus_client.exposition import generate_latest

    from mqwatch.agent.exporter import Exporter
    from benchmarks.serve_target import snapshot

    snap = snapshot(series)
    exporter = Exporter(process_metrics=False)
    best_publish = best_generate = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        exporter.publish(snap)
        best_publish = min(best_publish, time.perf_counter() - t0)
        t0 = time.perf_counter()
        generate_latest(exporter)
        best_generate = min(best_generate, time.perf_counter() - t0)
    return {"publish": best_publish, "generate_latest": best_generate}


def run(smoke: bool = False) -> Result:
    series = 2_000 if smoke else SERIES
    duration = 1.0 if smoke else DURATION
    windows = 2 if smoke else WINDOWS
    res = Result("serving", TITLE)
    load = os.getloadavg()
    m = {}
    runs = [("floor", False, SCRAPERS), ("mqwatch", False, SCRAPERS), ("generate_latest", False, SCRAPERS),
            ("floor", True, SCRAPERS), ("mqwatch", True, SCRAPERS),
            ("generate_latest", False, 1)]

    def show(label, r):
        m[label] = r
        print(f"  {label:32s} {r['scrapes']:5d} scrapes  p50 {_ms(r['p50']):>8} ms  p99 {_ms(r['p99']):>8} ms  "
              f"{r['per_second']:6.1f}/s  {r['bytes']:,} bytes", flush=True)

    for kind, gz, scrapers in runs:
        show(f"{kind}{' gzip' if gz else ''}{', 1 scraper' if scrapers == 1 else ''}", scrape(kind, series, duration, gz, scrapers))
    # one scraper, as one Prometheus: the same server idle, then collecting back to back, alternating
    for gz in (True, False):
        idle_r, busy_r = idle_and_busy(series, duration, gz, windows)
        show(f"mqwatch{' gzip' if gz else ''}, 1 scraper", idle_r)
        show(f"mqwatch-busy{' gzip' if gz else ''}, 1 scraper", busy_r)
    rt = render_times(series)
    q, f, g = m["mqwatch"], m["floor"], m["generate_latest"]
    q1, g1 = m["mqwatch, 1 scraper"], m["generate_latest, 1 scraper"]
    idle, busy = m["mqwatch gzip, 1 scraper"], m["mqwatch-busy gzip, 1 scraper"]
    idle_plain, busy_plain = q1, m["mqwatch-busy, 1 scraper"]

    def p99_ratio(what, a, b, limit=None):
        if a["p99"] is None or b["p99"] is None:  # too few scrapes: say so rather than print a number
            return Row(f"{what} (not measured: fewer than {MIN_P99_SAMPLES} scrapes)", math.nan, "x",
                       f"<= {limit:g}x" if limit else "", False if limit else None)
        return at_most(what, a["p99"] / b["p99"], limit) if limit else info(what, a["p99"] / b["p99"], "x")

    res.rows += [
        p99_ratio("1 scraper, gzip: scrape p99 while collections run back to back vs idle", busy, idle, TARGET_BUSY_VS_IDLE_P99),
        info("1 scraper, gzip: scrape p50 while collections run back to back vs idle", busy["p50"] / idle["p50"], "x"),
        p99_ratio("1 scraper, plain: scrape p99 while collections run back to back vs idle", busy_plain, idle_plain),
        at_least("1 scraper: p50 latency of generate_latest at scrape time over mqwatch", g1["p50"] / q1["p50"], TARGET_VS_AT_SCRAPE),
        info(f"{SCRAPERS} scrapers: same (they queue on one render)", g["p50"] / q["p50"], "x"),
        at_most(f"{SCRAPERS} scrapers: p50 latency vs floor", q["p50"] / f["p50"], TARGET_VS_FLOOR),
        p99_ratio(f"{SCRAPERS} scrapers: p99 latency vs floor", q, f, TARGET_VS_FLOOR),
        at_most(f"{SCRAPERS} scrapers: throughput, floor's scrapes/s over mqwatch's", f["per_second"] / q["per_second"], TARGET_VS_FLOOR),
        at_most(f"{SCRAPERS} scrapers, gzip: p50 latency vs floor serving the same gzip bytes",
                m["mqwatch gzip"]["p50"] / m["floor gzip"]["p50"], TARGET_VS_FLOOR),
        info("one generate_latest over one publish (render once, plus gzip), best of 3 each in process",
             rt["generate_latest"] / rt["publish"], "x"),
    ]
    res.details += [
        f"{series:,} series of `mqwatch_partition_lag_messages`; each scraper is its own process on one keep-alive "
        f"connection, scraping back to back for {duration:g} s per server; latency is request sent to last byte read. "
        f"Every row is from this single run (no minimum or median over runs); p50 and p99 are over all scrapes of "
        f"a server, p99 only with at least {MIN_P99_SAMPLES} scrapes. `mqwatch-busy` is mqwatch's server while a thread "
        f"builds a fresh {series:,}-series snapshot and publishes it (render and gzip) back to back, as a check whose "
        f"collections take longer than its interval; with one scraper, `mqwatch` and `mqwatch-busy` are the same "
        f"server process, its collecting thread off and on in {windows} alternating windows of {duration / windows:g} s "
        f"each, so both see the same machine load. Load average (1 min) at start and end: {load[0]:.1f}, "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        "| server | scrapers | scrapes | p50 (ms) | p99 (ms) | scrapes/s | body bytes |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in m.items():
        res.details.append(f"| {label.split(',')[0]} | {r['scrapers']} | {r['scrapes']} | {_ms(r['p50'])} | {_ms(r['p99'])} | "
                           f"{r['per_second']:.1f} | {r['bytes']:,} |")
    res.details += [
        "",
        f"Rendering, in process, best of 3: one publish (render once, plus gzip) {rt['publish'] * 1000:.0f} ms; "
        f"one `generate_latest` of the same snapshot {rt['generate_latest'] * 1000:.0f} ms.",
    ]
    return res
