"""Benchmark 4: serving /metrics with a snapshot of 100,000 series.

Three servers, each its own process, serve the same exposition to four concurrent
scraper processes for DURATION seconds: mqwatch's HTTP server (pre-rendered bytes), the
floor (Python's http.server returning the same bytes from memory) and the common design
of rendering with prometheus-client's generate_latest at every scrape. Then mqwatch and
the floor again with gzip asked for, as Prometheus does.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from benchmarks.report import Result, at_least, at_most, info

TITLE = "4. Serving /metrics: 100,000 series, 4 concurrent scrapers"
SERIES = 100_000
SCRAPERS = 4
DURATION = 30.0
TARGET_VS_FLOOR = 1.5
TARGET_VS_AT_SCRAPE = 20.0


def _serve(kind: str, series: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.serve_target", kind, str(series)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"{kind} server did not start")
    return proc, int(line)


def scrape(kind: str, series: int, duration: float, want_gzip: bool, scrapers: int = SCRAPERS) -> dict:
    server, port = _serve(kind, series)
    try:
        start_at = time.time() + 1.0  # every scraper process is up before the clock starts
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.scraper", str(port), str(start_at), str(duration),
                                   "gzip" if want_gzip else "plain"], stdout=subprocess.PIPE, text=True)
                 for _ in range(scrapers)]
        outs = []
        for p in procs:
            out, _ = p.communicate(timeout=duration + 300)
            if p.returncode != 0:
                raise RuntimeError(f"a scraper of {kind} failed")
            outs.append(json.loads(out))
    finally:
        server.kill()
        server.wait()
    lat = sorted(x for o in outs for x in o["latencies"])
    if not lat or any(o["status"] != [200] for o in outs):
        raise RuntimeError(f"{kind}: no successful scrape ({outs and outs[0]['status']})")
    return {
        "scrapes": len(lat), "p50": statistics.median(lat), "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "per_second": len(lat) / duration, "bytes": outs[0]["bytes"],
    }


def render_times(series: int) -> dict:
    """In-process: the cost of one publish (render once) against one generate_latest of the same snapshot."""
    from prometheus_client.exposition import generate_latest

    from agent.exporter import Exporter
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
    res = Result("serving", TITLE)
    m = {}
    for kind, gz in (("floor", False), ("mqwatch", False), ("generate_latest", False), ("floor", True), ("mqwatch", True)):
        label = kind + (" gzip" if gz else "")
        m[label] = scrape(kind, series, duration, gz)
        r = m[label]
        print(f"  {label:22s} {r['scrapes']:5d} scrapes  p50 {r['p50'] * 1000:8.1f} ms  p99 {r['p99'] * 1000:8.1f} ms  "
              f"{r['per_second']:6.1f}/s  {r['bytes']:,} bytes", flush=True)
    rt = render_times(series)
    q, f, g = m["mqwatch"], m["floor"], m["generate_latest"]
    res.rows += [
        at_most("p50 latency vs floor", q["p50"] / f["p50"], TARGET_VS_FLOOR),
        at_most("p99 latency vs floor", q["p99"] / f["p99"], TARGET_VS_FLOOR),
        at_most("throughput: floor's scrapes/s over mqwatch's", f["per_second"] / q["per_second"], TARGET_VS_FLOOR),
        at_least("p50 latency: generate_latest at scrape time over mqwatch", g["p50"] / q["p50"], TARGET_VS_AT_SCRAPE),
        at_most("gzip p50 latency vs floor serving the same gzip bytes", m["mqwatch gzip"]["p50"] / m["floor gzip"]["p50"], TARGET_VS_FLOOR),
        info("render once per publish vs one generate_latest", rt["generate_latest"] / rt["publish"], "x"),
    ]
    res.details += [
        f"{series:,} series of `mqwatch_partition_lag_messages`; {SCRAPERS} scraper processes, each on one keep-alive "
        f"connection, for {duration:g} s per server; latency is request sent to last byte read.",
        "",
        "| server | scrapes | p50 (ms) | p99 (ms) | scrapes/s | body bytes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in m.items():
        res.details.append(f"| {label} | {r['scrapes']} | {r['p50'] * 1000:.1f} | {r['p99'] * 1000:.1f} | {r['per_second']:.1f} | {r['bytes']:,} |")
    res.details += [
        "",
        f"Rendering, in process, best of 3: one publish (render once, plus gzip) {rt['publish'] * 1000:.0f} ms; "
        f"one `generate_latest` of the same snapshot {rt['generate_latest'] * 1000:.0f} ms.",
    ]
    return res
