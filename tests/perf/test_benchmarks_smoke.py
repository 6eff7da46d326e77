"""Smoke runs of the benchmarks I own (kafka, serving, memory), so they cannot rot.

Each runs `python -m benchmarks --smoke NAME` exactly as a user would, with tiny sizes,
and checks that it completes and writes sane figures to its markdown section. Timings and
targets are not judged here: smoke sizes are far too small for them, and ratios are only
reported from real benchmark runs (`./mqw bench`).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_smoke(name: str, tmp_path: Path) -> tuple[str, dict]:
    out = tmp_path / "benchmarks.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", name, "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    m = re.search(rf"<!-- bench:{name} (\{{.*?\}}) -->", text)
    assert m, f"no {name} section in {text[:500]}"
    return text, json.loads(m.group(1))


def rows(meta: dict) -> dict:
    return {r["what"]: r for r in meta["rows"]}


@pytest.mark.timeout(120)
def test_kafka_benchmark_runs_and_both_sides_agree(tmp_path):
    # The benchmark itself fails when the floor or mqwatch reports a lag other than the one created.
    text, meta = run_smoke("kafka", tmp_path)
    r = rows(meta)
    for size in (200, 400):  # both sizes judged against the floor, as 10k and 30k are in a real run
        ratio = next(v for k, v in r.items() if k.startswith(f"collection time vs floor, {size} partitions"))
        assert ratio["target"] == "<= 1x" and math.isfinite(ratio["value"]) and ratio["value"] > 0
    assert any(k.startswith("mqwatch time per partition") for k in r)
    # partitions, groups and committed offsets: both sizes, and the largest with groups scaled instead
    assert "| 200 | 3 | 120 |" in text and "| 400 | 3 | 240 |" in text and "| 400 | 6 | 240 |" in text


@pytest.mark.timeout(120)
def test_serving_benchmark_runs_every_server(tmp_path):
    text, meta = run_smoke("serving", tmp_path)
    r = rows(meta)
    assert r["4 scrapers: p50 latency vs floor"]["value"] > 0
    assert r["1 scraper: p50 latency of generate_latest at scrape time over mqwatch"]["target"] == ">= 20x"
    busy = next(v for k, v in r.items() if k.startswith("1 scraper, gzip: scrape p99 while collections run back to back vs idle"))
    assert busy["target"] == "<= 2x"
    body_sizes = {}
    for server, scrapers in (("floor", 4), ("mqwatch", 4), ("generate_latest", 4), ("floor gzip", 4), ("mqwatch gzip", 4),
                             ("mqwatch", 1), ("generate_latest", 1), ("mqwatch gzip", 1), ("mqwatch-busy gzip", 1),
                             ("mqwatch-busy", 1)):
        m = re.search(rf"^\| {server} \| {scrapers} \| (\d+) \| [\d.]+ \| ([\d.]+|n/a) \| [\d.]+ \| ([\d,]+) \|$", text, re.M)
        assert m, f"no row for {server} with {scrapers} scrapers"
        assert int(m.group(1)) > 0
        # p99 only where there are enough scrapes for it to mean something
        assert (m.group(2) == "n/a") == (int(m.group(1)) < 200), m.group(0)
        body_sizes[server] = int(m.group(3).replace(",", ""))
    # All serve the same exposition (up to the process metrics' digits); gzip is really compressed.
    plain = ("floor", "mqwatch", "generate_latest", "mqwatch-busy")
    assert max(body_sizes[s] for s in plain) - min(body_sizes[s] for s in plain) < 200
    assert body_sizes["mqwatch gzip"] < body_sizes["mqwatch"] / 5


@pytest.mark.timeout(120)
def test_memory_benchmark_sees_churned_groups_vanish(tmp_path):
    text, meta = run_smoke("memory", tmp_path)
    r = rows(meta)
    series = r["series after the 20 groups left vs before"]
    assert series["met"] is True, series  # deleted groups' series are gone, none left over
    tree = "(agent RSS + children's USS and unread bodies)"
    peak = next(v for k, v in r.items() if k.startswith(f"peak memory {tree}: highest 20 ms reading during collections 7 to 12 (3 groups"))
    trough = next(v for k, v in r.items() if k.startswith(f"trough memory {tree}"))
    assert peak["target"] == "<= 90 MB" and trough["target"] == "<= 70 MB"
    assert 10 < trough["value"] < 1000 and 10 < peak["value"] < 1000  # MB: real readings of a real process
    # Per gap, the trough and the peak are the lowest and highest of the same readings. (The judged
    # trough may exceed the judged peak: the last gap's readings come after the last judged collection.)
    gaps = re.findall(r"^\| \d+ \| \d+ \| \d+ \| ([\d.]+) \| ([\d.]+) \| \d+ \|$", text, re.M)
    assert gaps and all(float(low) <= float(high) for low, high in gaps), gaps
    serving = next(v for k, v in r.items() if k.startswith("of which the serving child"))
    assert 1 < serving["value"] < trough["value"]  # MB: counted, and a part of the tree's
    child = next(v for k, v in r.items() if k.startswith("readings with a reader child alive"))
    assert child["met"] is True and child["value"] == 0  # the smoke agent reads no records: never a child
    # The last cycle's gap is watched to its end, so its trough is a reading between collections.
    assert re.search(r"^\| 12 \| \d+ \| 0 \| [\d.]+ \| [\d.]+ \| \d+ \|$", text, re.M), text


def test_running_one_benchmark_keeps_the_others_sections(tmp_path):
    from benchmarks.report import Result, at_most, write_markdown

    out = tmp_path / "b.md"
    write_markdown(str(out), [Result("kafka", "K", [at_most("ratio", 1.1, 1.25)], ["kafka details"], "m", "t")], ["kafka", "serving"])
    write_markdown(str(out), [Result("serving", "S", [at_most("p50", 2.0, 1.5)], ["serving details"], "m", "t")], ["kafka", "serving"])
    write_markdown(str(out), [Result("kafka", "K", [at_most("ratio", 1.2, 1.25)], ["new kafka details"], "m", "t")], ["kafka", "serving"])
    text = out.read_text()
    assert "new kafka details" in text and "serving details" in text and "| kafka details" not in text
    assert text.index("<!-- bench:kafka") < text.index("<!-- bench:serving")
    assert "| K | ratio | 1.20x | <= 1.25x | met |" in text
    assert "| S | p50 | 2.00x | <= 1.5x | MISSED |" in text


@pytest.mark.timeout(120)
def test_redis_and_pulsar_benchmarks_run_from_the_one_command(tmp_path):
    # Their measurements live in benchmarks/redis_vs_exporter.py and pulsar_exposition.py (with their
    # own smoke tests); this checks they are reachable from `python -m benchmarks` and land in the table.
    import shutil

    from benchmarks.redis_vs_exporter import EXPORTER

    if not shutil.which(EXPORTER):
        pytest.skip("prometheus-redis-exporter is not installed")
    out = tmp_path / "benchmarks.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "redis", "pulsar", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert text.index("<!-- bench:redis") < text.index("<!-- bench:pulsar")
    # Redis: vs the floor and vs the exporter, for the queue keys alone and among unrelated keys.
    for name, targets in (("redis", ["<= 1.3x", "<= 0.5x"] * 2), ("pulsar", ["<= 1.5x"])):
        meta = json.loads(re.search(rf"<!-- bench:{name} (\{{.*?\}}) -->", text).group(1))
        assert [row["target"] for row in meta["rows"]] == targets
        assert all(row["value"] > 0 for row in meta["rows"])
