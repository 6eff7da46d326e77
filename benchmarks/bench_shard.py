"""Benchmark: sharding Kafka over replicas (`--shard I/N`), on the Kafka benchmark's scenario.

A fresh tansu gets the scenario (kafka_scenario.py); then, each round, one unsharded agent
and each of SHARDS shards run as fresh processes one after another (in production each shard
is its own pod, so they are timed alone, not competing for this machine's two cores). Each
process collects CYCLES times with the same check instance, as `mqwatch run` does: the first
collection of a fresh process, then a running agent's (whose interval is what sharding is
for). Figures: the slowest shard against the unsharded agent, minimum of ROUNDS rounds each.
The last collection's lag must be the scenario's exactly (the shards' sum) or the run fails.
"""

from __future__ import annotations

from benchmarks.bench_kafka import _run
from benchmarks.kafka_scenario import KafkaScenario, build, expected_lag
from benchmarks.report import Result, at_most, info
from mqwatch.checks.kafka.embedded import start_tansu

TITLE = "Kafka sharded over 3 replicas (tansu): slowest shard vs one unsharded agent"
SHARDS = 3
TARGET_RATIO = 0.6
ROUNDS = 3
CYCLES = 3
# (partitions, groups): the target scenario, then the large one
SIZES = ((10_000, 50), (30_000, 150))


def _probe(bootstrap: str, shard: str, scenario: KafkaScenario, cycles: int) -> tuple[dict, float, float]:
    """(probe result, first collection, a running agent's collection: the slower of the later cycles)."""
    r = _run("benchmarks.kafka_probe", bootstrap, "", shard, str(cycles))
    if not r["ok"]:
        raise RuntimeError(f"shard {shard or 'none'} failed: {r}")
    return r, r["collect_seconds"], max(r["later_cycle_seconds"] or [r["collect_seconds"]])


def measure(scenario: KafkaScenario, rounds: int, cycles: int = CYCLES, log=print) -> dict:
    broker = start_tansu()
    try:
        build(broker.address, scenario, log=log)
        want = expected_lag(scenario)
        out = {"first": ([], []), "running": ([], [])}  # (unsharded, slowest shard) per round
        for i in range(rounds):
            whole, first, running = _probe(broker.address, "", scenario, cycles)
            if whole["total_lag"] != want or whole["partitions"] != scenario.partitions:
                raise RuntimeError(f"unsharded gave a wrong answer: {whole} (expected total lag {want})")
            shards = [_probe(broker.address, f"{k}/{SHARDS}", scenario, cycles) for k in range(SHARDS)]
            lag, parts = sum(s[0]["total_lag"] for s in shards), sum(s[0]["partitions"] for s in shards)
            if lag != want or parts != scenario.partitions:
                raise RuntimeError(f"the shards gave a wrong answer: lag {lag}, partitions {parts}")
            out["first"][0].append(first)
            out["first"][1].append(max(s[1] for s in shards))
            out["running"][0].append(running)
            out["running"][1].append(max(s[2] for s in shards))
            log(f"  round {i + 1}: first collection unsharded {first:.3f}s, shards "
                f"{' '.join(f'{s[1]:.3f}s' for s in shards)}; running agent unsharded {running:.3f}s, shards "
                f"{' '.join(f'{s[2]:.3f}s' for s in shards)}")
        out["series"] = (whole["series"], [s[0]["series"] for s in shards])
        return out
    finally:
        broker.stop()


def run(smoke: bool = False, sizes=None) -> Result:
    sizes = sizes or (((300, 3),) if smoke else SIZES)
    rounds = 1 if smoke else ROUNDS
    per_topic = 20 if smoke else 100
    res = Result("shard", TITLE)
    res.details += [
        f"Each round: one unsharded agent, then shards 0/{SHARDS} .. {SHARDS - 1}/{SHARDS}, each a fresh process "
        f"(`benchmarks/kafka_probe.py`, the `run` code path) collecting {CYCLES} times, timed alone. *First* is a fresh "
        "process's first collection; *running* is the slower of its later collections (a running agent's). "
        f"Figures: slowest shard / unsharded, each the minimum of {rounds} rounds. The shards' lags must add up to "
        "the scenario's exactly.",
        "",
        "| partitions | groups | committed offsets | collection | unsharded (s) | slowest shard (s) | ratio | series: unsharded / per shard |",
        "|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for n, groups in sizes:
        scenario = KafkaScenario(n, groups=groups, partitions_per_topic=per_topic)
        print(f" {n:,} partitions: {scenario.describe()}", flush=True)
        m = measure(scenario, rounds)
        series = f"{m['series'][0]:,} / {' '.join(f'{s:,}' for s in m['series'][1])}"
        for which in ("running", "first"):
            whole, slowest = min(m[which][0]), min(m[which][1])
            ratio = slowest / whole
            what = (f"slowest of {SHARDS} shards vs unsharded, {which} {'agent' if which == 'running' else 'collection'}, "
                    f"{n:,} partitions x {groups} groups (min of {rounds})")
            judged = which == "running" and n == sizes[0][0]
            res.rows.append(at_most(what, ratio, TARGET_RATIO) if judged else info(what, ratio, "x"))
            res.details.append(f"| {n:,} | {groups} | {scenario.committed_offsets:,} | {which} | {whole:.3f} | "
                               f"{slowest:.3f} | {ratio:.2f} | {series} |")
    res.details += [
        "",
        "Why the first collection gains less: a shard does not yet know which of its topics each group commits on, "
        "so it fetches each group's offsets whole once (as the unsharded agent does every cycle) and keeps only its "
        "own; from then on it asks each group only for its own topics' partitions that group commits on "
        "(checks/kafka/grouptopics.py), re-fetching each group whole every 10th cycle to see new topics. The record "
        "reads that date lag in seconds (up to `time_lag_fetches` per check) are only in a fresh process's first cycle.",
    ]
    return res
