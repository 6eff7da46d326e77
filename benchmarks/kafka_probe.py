"""mqwatch's side of the Kafka benchmark, run as a fresh process like the floor.

One full collection through the same path `mqwatch run` uses: config parsed from YAML,
the check built by the registry, collected by the scheduler's Collector (worker thread,
hard timeout) and published to the Exporter, which renders the exposition. Prints one
JSON line.
"""

import gc
import json
import sys
import time

T_START = time.perf_counter()

from mqwatch.agent.app import build_check  # noqa: E402
from mqwatch.agent.config import parse_config  # noqa: E402
from mqwatch.agent.exporter import Exporter  # noqa: E402
from mqwatch.agent.memtrim import tune_malloc  # noqa: E402
from mqwatch.agent.scheduler import Collector  # noqa: E402

CONFIG = """
agent: {{timeout: {timeout}s}}
checks:
  - kind: kafka
    name: bench
    bootstrap_servers: {bootstrap}
{extra}"""


def main(bootstrap: str, time_lag: str = "", shard: str = "", cycles: str = "1", timeout: float = 120.0) -> None:
    tune_malloc()  # as `mqwatch run` does first
    extra = f"    time_lag: '{time_lag}'\n" if time_lag else ""  # quoted: YAML reads a bare off as false
    cfg = parse_config(CONFIG.format(bootstrap=bootstrap, timeout=timeout, extra=extra), "bench.yaml").checks[0]
    from mqwatch.agent.sharding import WHOLE, parse

    shard = parse(shard) if shard else WHOLE
    exporter = Exporter(shard=shard)
    t0 = time.perf_counter()
    check = build_check(cfg, shard)
    gc.freeze()  # as `mqwatch run` does once its checks are built (Agent.start)
    snap = Collector(check, cfg.timeout).collect()
    exporter.publish(snap, cfg.kind)
    collect = time.perf_counter() - t0
    later = []  # a running agent's next cycles (the same check instance, its state kept)
    for _ in range(int(cycles) - 1):
        t1 = time.perf_counter()
        snap = Collector(check, cfg.timeout).collect()
        later.append(time.perf_counter() - t1)
        exporter.publish(snap, cfg.kind)
    lag = snap.samples("mqwatch_consumer_lag_messages")
    print(json.dumps({
        "collect_seconds": collect, "later_cycle_seconds": later, "process_seconds": time.perf_counter() - T_START,
        "ok": snap.ok, "error": snap.error, "errors": [list(e) for e in snap.errors],
        "partitions": int(sum(v for _, v in snap.samples("mqwatch_kafka_topic_partitions"))),
        "groups": len(snap.samples("mqwatch_consumer_members")),
        "lag_series": len(lag), "total_lag": int(sum(v for _, v in lag)),
        "series": snap.series, "exposition_bytes": len(exporter.body()),
    }))
    check.close()


if __name__ == "__main__":
    # BOOTSTRAP [TIME_LAG [SHARD]]: TIME_LAG "off", "exact", "estimate" or "" (the check's default);
    # SHARD I/N collects one shard's share, CYCLES collections (benchmarks/bench_shard.py)
    main(*sys.argv[1:5])
