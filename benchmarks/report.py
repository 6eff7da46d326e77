"""Benchmark results, the machine they ran on, and docs/benchmarks.md.

Each benchmark owns one section of docs/benchmarks.md between markers, so running a
subset (`python -m benchmarks kafka`) replaces only that section and keeps the others;
the summary table at the top is rebuilt from every section's rows.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One measured figure beside its target. `met` is None when there is no target."""

    what: str
    value: float
    unit: str  # "x" for ratios, "MB", "s", ...
    target: str = ""  # human text, e.g. "<= 1.25"
    met: bool | None = None

    def shown(self) -> str:
        if math.isnan(self.value):  # not measured (e.g. too few samples for a p99): say so, print no number
            return "n/a"
        if self.unit == "x":
            return f"{self.value:.2f}x"
        if self.unit == "":
            return f"{self.value:g}"
        return f"{self.value:.3g} {self.unit}" if self.value < 100 else f"{self.value:,.0f} {self.unit}"

    def verdict(self) -> str:
        return "" if self.met is None else ("met" if self.met else "MISSED")


def at_most(what, value, limit, unit="x") -> Row:
    return Row(what, value, unit, f"<= {limit:g}{'x' if unit == 'x' else ' ' + unit}", value <= limit)


def at_least(what, value, limit, unit="x") -> Row:
    return Row(what, value, unit, f">= {limit:g}{'x' if unit == 'x' else ' ' + unit}", value >= limit)


def below(what, value, limit, unit="%") -> Row:
    return Row(what, value, unit, f"< {limit:g}{unit if unit == '%' else ' ' + unit}", value < limit)


def info(what, value, unit="") -> Row:
    return Row(what, value, unit)


@dataclass
class Result:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # markdown lines: raw numbers, set-up, notes
    machine: str = ""
    when: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.met is not False for r in self.rows)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except Exception:
        mem = "RAM unknown"
    versions = [f"Python {platform.python_version()}"]
    try:
        from importlib.metadata import version

        import confluent_kafka

        versions.append(f"confluent-kafka {version('confluent-kafka')} (librdkafka {confluent_kafka.libversion()[0]})")
        versions.append(f"prometheus-client {version('prometheus-client')}")
    except Exception:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {mem}, {platform.system()} {platform.release()}; " + ", ".join(versions)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def print_result(res: Result) -> None:
    print(f"\n== {res.title} ({res.seconds:.0f}s)")
    width = max((len(r.what) for r in res.rows), default=10)
    for r in res.rows:
        target = f"target {r.target:<10} {r.verdict()}" if r.target else ""
        print(f"   {r.what:<{width}}  {r.shown():>12}   {target}")


# ---- docs/benchmarks.md -----------------------------------------------------------------------
_HEADER = """# mqwatch benchmarks

Written by `./mqw bench` (`python -m benchmarks [NAME ...]`); do not edit by hand. Each
section says when and on which machine it last ran, and most give the load average.
Machines here are noisy: timings are judged as ratios against a floor or a baseline
measured in the same run. Each row's text says what it is: a minimum of N runs, a median
of N cycles (or of their per-cycle minima), the highest reading of a single run, or one
run's percentile over all its samples (p99 only where there are at least 200 samples).

"""
_SECTION = re.compile(r"<!-- bench:(?P<name>[\w-]+) (?P<meta>\{.*?\}) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->\n", re.S)


def _section(res: Result) -> str:
    meta = json.dumps({"title": res.title, "when": res.when, "rows": [asdict(r) for r in res.rows]}, sort_keys=True)
    lines = [f"<!-- bench:{res.name} {meta} -->", f"## {res.title}", "",
             f"Last run {res.when} in {res.seconds:.0f} s on: {res.machine}", "",
             "| measure | result | target | |", "|---|---:|---|---|"]
    for r in res.rows:
        lines.append(f"| {r.what} | {r.shown()} | {r.target} | {r.verdict()} |")
    lines.append("")
    lines.extend(res.details)
    if res.details and res.details[-1] != "":
        lines.append("")
    lines.append(f"<!-- /bench:{res.name} -->")
    return "\n".join(lines) + "\n"


def write_markdown(path: str, results: list[Result], order: list[str]) -> None:
    """Replace the sections of `results` in the file at `path`, keeping the others."""
    sections: dict[str, tuple[dict, str]] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            for m in _SECTION.finditer(fh.read()):
                sections[m.group("name")] = (json.loads(m.group("meta")), m.group(0))
    for res in results:
        meta = {"title": res.title, "when": res.when, "rows": [asdict(r) for r in res.rows]}
        sections[res.name] = (meta, _section(res))
    names = [n for n in order if n in sections] + sorted(n for n in sections if n not in order)
    out = [_HEADER, "## Summary", "", "| benchmark | measure | result | target | |", "|---|---|---:|---|---|"]
    for n in names:
        meta = sections[n][0]
        for r in meta["rows"]:
            if r["target"]:
                row = Row(**r)
                out.append(f"| {meta['title']} | {row.what} | {row.shown()} | {row.target} | {row.verdict()} |")
    out.append("")
    for n in names:
        out.append(sections[n][1])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out))
