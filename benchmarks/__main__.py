"""`python -m benchmarks [NAME ...]` (or `./mqw bench`): run benchmarks, print ratios beside targets,
and write docs/benchmarks.md.

A benchmark is a module `benchmarks/bench_<name>.py` with TITLE and run(smoke) -> Result;
they are discovered by file name, so adding one needs no change here.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
from pathlib import Path

import benchmarks
from benchmarks.report import machine, now, print_result, write_markdown

# The order of the issue; benchmarks not listed here follow alphabetically.
ORDER = ["kafka", "redis", "pulsar", "serving", "memory", "soak", "time_to_page"]
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def available() -> dict[str, str]:
    found = {m.name[len("bench_"):]: f"benchmarks.{m.name}" for m in pkgutil.iter_modules(benchmarks.__path__)
             if m.name.startswith("bench_")}
    return dict(sorted(found.items(), key=lambda kv: (ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER), kv[0])))


def main(argv=None) -> int:
    names = available()
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all): {', '.join(names)}")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and durations: checks the benchmark runs, not speed")
    p.add_argument("--output", help=f"markdown file to update (default: {DEFAULT_OUTPUT}; with --smoke: none)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in names]
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names)}")
    chosen = args.names or list(names)
    output = args.output or (None if args.smoke else str(DEFAULT_OUTPUT))
    host = machine()
    print(f"machine: {host}")
    results = []
    for name in chosen:
        module = importlib.import_module(names[name])
        print(f"\n-- {module.TITLE}{' (smoke)' if args.smoke else ''}", flush=True)
        t0 = time.monotonic()
        res = module.run(smoke=args.smoke)
        res.name, res.seconds, res.machine, res.when = name, time.monotonic() - t0, host, now()
        if args.smoke:
            res.title += " (smoke run: sizes too small for its targets)"
        print_result(res)
        results.append(res)
        if output:  # written after each benchmark, so an interrupted run keeps what it measured
            write_markdown(output, [res], ORDER)
    if output:
        print(f"\nwrote {output}")
    # A missed target fails the command; a smoke run only has to run.
    return 0 if args.smoke or all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
