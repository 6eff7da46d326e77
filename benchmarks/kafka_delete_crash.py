"""Reproduces the agent crash the soak benchmark found: deleting Kafka topics on tansu while a
Kafka check collects makes librdkafka 2.16.0 segfault (rd_kafka_metadata_update_op ->
rd_kafka_metadata_cache_find -> strcmp on NULL, thread rdk:main), ending the process.

    .venv/bin/python -m benchmarks.kafka_delete_crash      # exit code 139 (SIGSEGV) = reproduced

The crashing client is the record reader's consumer (a Fetch answered for a deleted topic);
it now runs in a child process (checks/kafka/readerprocess.py), so this prints "no crash" and
logs `kafka_record_reader_failed error=died (SIGSEGV)` for each read the crash cost.

A churn thread creates topics (and a `.DLT` beside each), produces to them and deletes the
oldest, while the check collects every 0.1 s; after 15 s it deletes the last ones and stops.
Neither half alone crashes (no check: fine; the check alone on topics deleted one by one: fine).
"""

from __future__ import annotations

import sys
import threading
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from mqwatch.agent.config import parse_config
from mqwatch.agent.app import build_check
from mqwatch.agent.scheduler import Collector
from mqwatch.checks.kafka.embedded import start_tansu

LIVE = 4


def main() -> int:
    broker = start_tansu()
    admin = AdminClient({"bootstrap.servers": broker.address})
    producer = Producer({"bootstrap.servers": broker.address, "batch.num.messages": 1})
    stop = threading.Event()
    live: list[int] = []

    def churn():
        n = 0
        while not stop.is_set():
            names = [f"churn-{n}", f"churn-{n}.DLT"]
            for f in admin.create_topics([NewTopic(t, 1, 1) for t in names]).values():
                f.result(10)
            for t in names:
                producer.produce(t, b"x")
            producer.flush(10)
            live.append(n)
            n += 1
            if len(live) > LIVE:
                m = live.pop(0)
                for f in admin.delete_topics([f"churn-{m}", f"churn-{m}.DLT"]).values():
                    f.result(10)
            time.sleep(0.1)
        for m in live:
            for t in (f"churn-{m}", f"churn-{m}.DLT"):
                for f in admin.delete_topics([t]).values():
                    f.result(10)
        print(f"deleted the last {len(live)} topic pairs", flush=True)

    cfg = parse_config(f"checks:\n  - kind: kafka\n    name: x\n    bootstrap_servers: {broker.address}\n", "crash.yaml", {})
    check = build_check(cfg.checks[0])
    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    t0, cycles = time.time(), 0
    while time.time() - t0 < 40:
        if time.time() - t0 > 15:
            stop.set()
        Collector(check, 5.0).collect()
        cycles += 1
        time.sleep(0.1)
    print(f"no crash in {cycles} collections", flush=True)
    broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
