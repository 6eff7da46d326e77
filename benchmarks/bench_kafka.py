"""Benchmark 1: Kafka at scale on tansu, mqwatch's collection against the raw-client floor.

For each size a fresh tansu broker gets the scenario (kafka_scenario.py); then the floor
(kafka_floor.py, plain confluent-kafka) and mqwatch (kafka_probe.py, the `run` code path)
each run ROUNDS times as fresh processes, alternating so drift hits both alike, and in
the opposite order every other round, so neither side always runs right after the other.
Each reports the time from creating its client to holding the answer; the minimum counts.
Both answers are checked against the lag the scenario created.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.kafka_scenario import KafkaScenario, build, expected_lag
from benchmarks.report import Result, at_most, info
from mqwatch.checks.kafka.embedded import start_tansu

TITLE = "1. Kafka at scale (tansu): mqwatch collection vs plain confluent-kafka"
TARGET_RATIO = 1.0  # issue 15: at or under the raw client, at 10k and at 30k partitions
# The broker's own time to answer the groups' OffsetFetch (most of a 10k collection for the
# floor and mqwatch alike) varies by 0.8-1.4 s between runs of the same request here, so the
# minimum of 3 was mostly noise: 3 runs of the same code gave 0.90x, 0.92x and 1.03x.
ROUNDS = 5
SIZES = (1_000, 10_000, 30_000)
TARGET_SIZE = 10_000
JUDGED_SIZES = (10_000, 30_000)
LINEAR_SLACK = 1.2  # cost per partition at the largest size may exceed the target size's by 20%


def _run(module: str, bootstrap: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", module, bootstrap, *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(scenario: KafkaScenario, rounds: int = ROUNDS, log=print, time_lag_off: bool = False,
            keep: bool = False, alongside=None) -> dict:
    """Each side's minimum over `rounds` fresh processes on a new broker holding `scenario`.

    keep: leave the broker running (in the result as "broker"; the caller stops it).
    alongside: (broker, scenario) of another size, measured in the same rounds, alternating
    with this one so drift hits both sizes alike; its sides come back as "floor alongside"
    and "mqwatch alongside".
    """
    broker = start_tansu()
    try:
        build(broker.address, scenario, log=log)
        sides = [("floor", "benchmarks.kafka_floor", ()), ("mqwatch", "benchmarks.kafka_probe", ())]
        if time_lag_off:
            sides.append(("mqwatch time_lag off", "benchmarks.kafka_probe", ("off",)))
        targets = [(side, module, args, broker, scenario) for side, module, args in sides]
        if alongside is not None:
            targets = [(f"{side} alongside", module, args, *alongside) for side, module, args in sides] + targets
        runs: dict[str, list[dict]] = {side: [] for side, *_ in targets}
        for i in range(rounds):
            for side, module, args, on, sc in (targets if i % 2 == 0 else targets[::-1]):
                r = _run(module, on.address, *args)
                want = expected_lag(sc)
                if r["total_lag"] != want or r["partitions"] != sc.partitions or r.get("ok") is False:
                    raise RuntimeError(f"{side} gave a wrong answer: {r} (expected total lag {want})")
                runs[side].append(r)
                log(f"  round {i + 1} {side:8s} collect {r['collect_seconds']:.3f}s  process {r['process_seconds']:.3f}s")
        result = {side: {"collect": min(r["collect_seconds"] for r in rs), "process": min(r["process_seconds"] for r in rs),
                         "last": rs[-1]} for side, rs in runs.items()}
        if keep:
            result["broker"], broker = broker, None
        return result
    finally:
        if broker is not None:
            broker.stop()


def run(smoke: bool = False) -> Result:
    sizes = (200, 400) if smoke else SIZES
    target_size = 200 if smoke else TARGET_SIZE
    groups = 3 if smoke else 50
    per_topic = 20 if smoke else 100
    res = Result("kafka", TITLE)
    measured = {}
    try:
        for n in sizes:
            scenario = KafkaScenario(n, groups=groups, partitions_per_topic=per_topic)
            print(f" {n:,} partitions: {scenario.describe()}", flush=True)
            measured[n] = (scenario, measure(scenario, rounds=2 if smoke else ROUNDS, time_lag_off=n == target_size,
                                             keep=n == target_size))
        return _report(res, measured, sizes, target_size, groups, per_topic, smoke)
    finally:
        if target_size in measured:
            measured[target_size][1]["broker"].stop()


def _report(res: Result, measured: dict, sizes, target_size: int, groups: int, per_topic: int, smoke: bool) -> Result:
    _, m = measured[target_size]
    rounds = 2 if smoke else ROUNDS
    judged = (target_size, max(sizes)) if smoke else JUDGED_SIZES
    for n in sizes:
        _, mm = measured[n]
        what = f"collection time vs floor, {n:,} partitions, default settings (min of {rounds} fresh processes each)"
        ratio = mm["mqwatch"]["collect"] / mm["floor"]["collect"]
        res.rows.append(at_most(what, ratio, TARGET_RATIO) if n in judged else info(what, ratio, "x"))
        if n == target_size:
            res.rows.append(info(f"same, with time_lag: off (the floor's answer, no record reads), {n:,} partitions",
                                 m["mqwatch time_lag off"]["collect"] / m["floor"]["collect"], "x"))
    largest = max(sizes)
    # The sizes above give each group a fifth of the topics, so one group's committed offsets
    # grow with the cluster (2,000 at 10k, 6,000 at 30k), and librdkafka handles one group's
    # OffsetFetch reply in time quadratic in its size (see below). To show how mqwatch's own
    # cost grows with partitions, the largest size also runs with the 10k scenario's groups
    # repeated: as many offsets per group as at 10k, groups and offsets 3x.
    base = measured[target_size][0]
    scaled = KafkaScenario(largest, groups=groups * largest // target_size, partitions_per_topic=per_topic,
                           topics_per_group=len(base.group_topics(0)))
    print(f" {largest:,} partitions, groups scaled: {scaled.describe()}, rounds alternating with "
          f"{target_size:,} partitions", flush=True)
    # The two sizes' rounds alternate (as floor and mqwatch do), so a load change on this shared
    # machine between the 10k measurement above and this one does not pass for growth.
    scaled_m = measure(scaled, rounds=rounds, alongside=(measured[target_size][1]["broker"], base))
    per_part = {n: measured[n][1]["mqwatch"]["collect"] / n for n in sizes}
    growth = (scaled_m["mqwatch"]["collect"] / largest) / (scaled_m["mqwatch alongside"]["collect"] / target_size)
    res.rows.append(at_most(f"mqwatch time per partition, {largest:,} vs {target_size:,}, {scaled.committed_offsets // scaled.groups:,} "
                            f"offsets per group at both, rounds of both sizes alternated (min of {rounds} each; 1.0 = linear)",
                            growth, LINEAR_SLACK))
    res.rows.append(info("same for the floor", (scaled_m["floor"]["collect"] / largest)
                         / (scaled_m["floor alongside"]["collect"] / target_size), "x"))
    res.rows.append(info(f"mqwatch time per partition, {largest:,} vs {target_size:,}, a fifth of the topics per group "
                         f"(offsets per group 3x)", per_part[largest] / per_part[target_size], "x"))
    floor_growth = (measured[largest][1]["floor"]["collect"] / largest) / (measured[target_size][1]["floor"]["collect"] / target_size)
    res.rows.append(info("same for the floor", floor_growth, "x"))
    res.details += [
        f"Scenario per size: topics of {per_topic} partitions, one record each, {groups} groups each committing on a fifth "
        "of the topics (offset 0 on even partitions, 1 on odd ones, so half the partitions lag by one). "
        "Both sides must report exactly that lag. Times are from creating the client to holding the answer, "
        f"minimum of {2 if smoke else ROUNDS} fresh processes each; process times include interpreter start and imports.",
        "",
        "| partitions | groups | committed offsets | floor (s) | mqwatch (s) | ratio | floor process (s) | mqwatch process (s) | mqwatch ms per 1k partitions | series | exposition bytes |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc, mm in [measured[n] for n in sizes] + [(scaled, scaled_m)]:
        n = sc.partitions
        f, q = mm["floor"], mm["mqwatch"]
        res.details.append(
            f"| {n:,} | {sc.groups} | {sc.committed_offsets:,} | {f['collect']:.3f} | {q['collect']:.3f} | {q['collect'] / f['collect']:.2f} | "
            f"{f['process']:.3f} | {q['process']:.3f} | {1000 * q['collect'] / n * 1000:.1f} | {q['last']['series']:,} | "
            f"{q['last']['exposition_bytes']:,} |")
    res.details += [
        "",
        "The floor issues one `list_offsets` for all partitions, as the issue defines it. In confluent-kafka 2.16 the client "
        "CPU of one `list_offsets` call grows with the square of its partitions (measured here: 1k 0.02 s, 10k 0.8 s, "
        "30k 4.7 s), so the floor itself grows faster than linearly. mqwatch sends ListOffsets in batches of 1,000 "
        "partitions (`OFFSETS_PER_REQUEST` in checks/kafka/client.py) with one Future per batch (the library's "
        "`list_offsets` makes one per partition), all pipelined, before the groups' OffsetFetch requests; with the end "
        "offsets known it builds each group's series, the record reads for lag in seconds included, as that group's "
        "reply arrives, while the broker answers the next groups (the floor sums the lags after the last reply). "
        "That is why it can beat the floor although it also reads earliest offsets (for `mqwatch_queue_messages`), "
        "describes every group (state, members) and, at default settings, reads records for lag in seconds.",
        "",
        "mqwatch's default `time_lag: estimate` dates committed offsets from end-offset history; a fresh process has no "
        "history yet, so its first cycle reads the records at up to `time_lag_fetches` (500) committed offsets to give "
        "lag in seconds, which the floor does not answer. Those reads share one consumer and one Fetch per broker; they "
        "took 1-2 s until the reader stopped setting `queued.min.messages` to 1, which librdkafka compares with the "
        "consumer's whole queue, so the first record made every other partition back off for a second (now about "
        "0.1 s). The reader's child process starts with the first collection, so its start-up overlaps the offset "
        "requests, and the read runs while the other series are built. A running agent's later cycles need no reads. "
        "The `time_lag: off` row is the same collection without that answer.",
        "",
        "At 10k partitions both sides wait mostly for the broker's answers to the 50 groups' OffsetFetch requests, "
        "which tansu handles one after another on a connection (0.76 s of its CPU for 100k committed offsets; the "
        "same request took 0.8-1.4 s from run to run here), so the 10k ratio is decided within that spread; at 30k "
        "the floor's own client CPU dominates. What mqwatch still does after the last reply, and what would get it "
        "under the floor at 10k: benchmarks/README.md.",
        "",
        "Growth with size: with a fifth of the topics per group, each group's committed offsets triple from 10k to 30k "
        "(2,000 to 6,000), and librdkafka's `rd_kafka_handle_OffsetFetch` looks every partition of a reply up in its "
        "list with `rd_kafka_topic_partition_list_find`, a linear scan, so one group's reply costs the square of its "
        "size (one group, 2,000 offsets: 0.011 s of client CPU; 6,000: 0.077 s). Floor and mqwatch both pay it, since "
        "both use `list_consumer_group_offsets`, and it is most of why the floor's time per partition doubles. Splitting "
        "a group's fetch by topic would need the group's topics before fetching them, so that is left as is. The "
        "judged growth row keeps 2,000 offsets per group at 30k (150 groups instead of 50, 20 topics each, as the "
        "issue's 10k scenario has), which measures what grows with partitions and offsets rather than that quadratic "
        "term of the client library. Its rounds alternate with rounds on the 10k broker (kept running), and the row "
        "divides the two sizes' minima from those same rounds: this row compares mqwatch with itself at two sizes, "
        "so without that a change of load on the shared machine between the two measurements read as growth (runs "
        "at load 5-7 gave 1.7-1.8x for mqwatch and the floor alike while interleaved single runs gave about 0.9x). "
        "The other per-partition rows compare the sizes' own measurements, minutes apart.",
    ]
    return res
