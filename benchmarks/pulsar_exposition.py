"""Benchmark 3: a Pulsar broker /metrics text with 10,000 topics x 2 subscriptions.

The text follows real Pulsar's layout (pulsar-broker .../stats/prometheus/TopicStats.java:
labels cluster, namespace, topic as the full name with `-partition-N` for partitions,
subscription; samples grouped under one `# TYPE` per metric). It is served from memory by a
local HTTP server.

- floor: prometheus-client's text parser alone on the same text, in memory
- mqwatch: one full collection of a `kind: pulsar` check (HTTP fetch, parse, partition
  aggregation, evaluation, snapshot) through the Collector `mqwatch run` uses
Both are timed min-of-N; the ratio mqwatch / floor is printed beside the target (<= 1.5).

    python -m benchmarks.pulsar_exposition [--topics 10000] [--subscriptions 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGET = 1.5

TOPIC_METRICS = (
    "pulsar_subscriptions_count", "pulsar_producers_count", "pulsar_consumers_count", "pulsar_rate_in",
    "pulsar_rate_out", "pulsar_throughput_in", "pulsar_throughput_out", "pulsar_storage_size",
    "pulsar_storage_logical_size", "pulsar_msg_backlog", "pulsar_storage_backlog_size",
    "pulsar_storage_offloaded_size", "pulsar_storage_write_rate", "pulsar_storage_read_rate",
    "pulsar_publish_rate_limit_times", "pulsar_storage_backlog_age_seconds", "pulsar_in_bytes_total",
    "pulsar_in_messages_total",
)
SUBSCRIPTION_METRICS = (
    "pulsar_subscription_back_log", "pulsar_subscription_back_log_no_delayed", "pulsar_subscription_delayed",
    "pulsar_subscription_msg_rate_redeliver", "pulsar_subscription_unacked_messages",
    "pulsar_subscription_blocked_on_unacked_messages", "pulsar_subscription_msg_rate_out",
    "pulsar_subscription_msg_ack_rate", "pulsar_subscription_msg_throughput_out",
    "pulsar_subscription_consumers_count", "pulsar_subscription_last_expire_timestamp",
    "pulsar_subscription_last_acked_timestamp", "pulsar_subscription_last_consumed_flow_timestamp",
    "pulsar_subscription_last_consumed_timestamp", "pulsar_subscription_msg_rate_expired",
    "pulsar_subscription_total_msg_expired",
)


def topic_names(topics: int, partitions_every: int = 10) -> list[str]:
    """Full topic names; every 10th group of 4 topics is one partitioned topic's partitions."""
    names = []
    for i in range(topics):
        if (i // 4) % partitions_every == 0:
            names.append(f"persistent://public/default/orders-{i // 4}-partition-{i % 4}")
        else:
            names.append(f"persistent://public/default/topic-{i}")
    return names


def exposition(topics: int = 10_000, subscriptions: int = 2) -> str:
    names = topic_names(topics)
    base = [f'cluster="standalone",namespace="public/default",topic="{t}"' for t in names]
    out = []
    for metric in TOPIC_METRICS:
        out.append(f"# TYPE {metric} gauge")
        out += [f"{metric}{{{b}}} {i % 97}" for i, b in enumerate(base)]
    for metric in SUBSCRIPTION_METRICS:
        out.append(f"# TYPE {metric} gauge")
        for s in range(subscriptions):
            out += [f'{metric}{{{b},subscription="sub-{s}"}} {(i + s) % 13}' for i, b in enumerate(base)]
    return "\n".join(out) + "\n"


class _Server:
    def __init__(self, body: bytes):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/metrics"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def floor_once(text: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    started = time.perf_counter()
    for family in text_string_to_metric_families(text):
        for _ in family.samples:
            pass
    return time.perf_counter() - started


def mqwatch_once(url: str):
    from mqwatch.agent.config import parse_config
    from mqwatch.agent.app import build_check
    from mqwatch.agent.scheduler import Collector
    import yaml

    doc = {"agent": {"timeout": "300s"}, "checks": [{"kind": "pulsar", "name": "bench", "metrics_url": url,
                                                       "request_timeout": "120s"}]}
    cfg = parse_config(yaml.safe_dump(doc), "bench.yaml").checks[0]
    check = build_check(cfg)
    try:
        started = time.perf_counter()
        snap = Collector(check, cfg.timeout).collect()
        elapsed = time.perf_counter() - started
    finally:
        check.close()
    if not snap.ok:
        raise RuntimeError(f"collection failed: {snap.error}")
    return elapsed, snap


def run(topics: int, subscriptions: int, runs: int, out=sys.stdout) -> dict:
    text = exposition(topics, subscriptions)
    server = _Server(text.encode())
    try:
        floors = [floor_once(text) for _ in range(runs)]
        results = [mqwatch_once(server.url) for _ in range(runs)]
    finally:
        server.stop()
    snap = results[-1][1]
    queues = {lbl["queue"] for lbl, _ in snap.samples("mqwatch_consumer_lag_messages")}
    floor, mine = min(floors), min(r[0] for r in results)
    ratio = mine / floor
    report = {"topics": topics, "subscriptions": subscriptions, "bytes": len(text), "floor_s": floor,
              "mqwatch_s": mine, "ratio": ratio, "target": TARGET, "queues": len(queues), "series": snap.series}
    print(f"pulsar exposition: {topics} topics x {subscriptions} subscriptions, {len(text) / 1e6:.1f} MB, "
          f"{len(queues)} queues after partition aggregation, {snap.series} series", file=out)
    print(f"  floor (prometheus-client parser alone): {floor:.3f} s   mqwatch collection: {mine:.3f} s   "
          f"ratio {ratio:.2f} (target <= {TARGET})  [min of {runs}]", file=out)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topics", type=int, default=10_000)
    ap.add_argument("--subscriptions", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    report = run(args.topics, args.subscriptions, args.runs)
    return 0 if report["ratio"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
