"""mqwatch's side of the Kafka benchmark, run as a fresh process like the floor.

One full collection through the same path `mqwatch run` uses: config parsed from YAML,
the check built by the registry, collected by the scheduler's Collector (worker thread,
hard timeout) and published to the Exporter, which renders the exposition. Prints one
JSON line.
"""

import json
import sys
import time

T_START = time.perf_counter()

from agent.app import build_check  # noqa: E402
from agent.config import parse_config  # noqa: E402
from agent.exporter import Exporter  # noqa: E402
from agent.scheduler import Collector  # noqa: E402

CONFIG = """
agent: {{timeout: {timeout}s}}
checks:
  - kind: kafka
    name: bench
    bootstrap_servers: {bootstrap}
{extra}"""


def main(bootstrap: str, time_lag: str = "", timeout: float = 120.0) -> None:
    extra = f"    time_lag: '{time_lag}'\n" if time_lag else ""  # quoted: YAML reads a bare off as false
    cfg = parse_config(CONFIG.format(bootstrap=bootstrap, timeout=timeout, extra=extra), "bench.yaml").checks[0]
    exporter = Exporter()
    t0 = time.perf_counter()
    check = build_check(cfg)
    snap = Collector(check, cfg.timeout).collect()
    exporter.publish(snap, cfg.kind)
    collect = time.perf_counter() - t0
    lag = snap.samples("mqwatch_consumer_lag_messages")
    print(json.dumps({
        "collect_seconds": collect, "process_seconds": time.perf_counter() - T_START,
        "ok": snap.ok, "error": snap.error, "errors": [list(e) for e in snap.errors],
        "partitions": int(sum(v for _, v in snap.samples("mqwatch_kafka_topic_partitions"))),
        "groups": len(snap.samples("mqwatch_consumer_members")),
        "lag_series": len(lag), "total_lag": int(sum(v for _, v in lag)),
        "series": snap.series, "exposition_bytes": len(exporter.body()),
    }))
    check.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])  # BOOTSTRAP [TIME_LAG]: "off", "exact", "estimate" (default: the check's default)
