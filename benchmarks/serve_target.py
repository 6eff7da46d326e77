"""One HTTP server of the serving benchmark, run as its own process: `python -m benchmarks.serve_target KIND SERIES`.

KIND is `mqwatch` (the agent's exporter and HTTP server, in its serving child as in `mqwatch run`), `mqwatch-busy` (the same
while a thread collects back to back: builds a fresh snapshot of SERIES series and
publishes it, render and gzip included, as a check's loop does in `mqwatch run` with
collections that take longer than the interval), `mqwatch-switchable` (the same thread,
collecting or idle as told: a line `collect` or `idle` on stdin, answered `ok` once in
effect, an idle one after the collection under way has ended), `floor` (Python's
http.server returning the very same bytes from memory) or `generate_latest` (the common
exporter design: render the registry with prometheus-client at every scrape). Prints the
port once it listens, then serves until killed.
"""

from __future__ import annotations

import gzip
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest

from mqwatch.agent.exporter import Exporter
from mqwatch.agent.snapshot import SnapshotBuilder
from mqwatch.checks.kafka.check import KafkaCheck

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def snapshot(series: int):
    """A Kafka-shaped snapshot: per-partition lag of 50 groups on topics of 20 partitions."""
    b = SnapshotBuilder("kafka", "bench", KafkaCheck.metrics)
    groups, partitions = 50, 20
    for i in range(series):
        topic, rest = divmod(i, groups * partitions)
        group, partition = divmod(rest, partitions)
        b.add("mqwatch_partition_lag_messages", (i * 7919) % 100_000, queue=f"orders-{topic:04d}",
              consumer=f"billing-service-{group:02d}", partition=partition)
    return b.build(1_700_000_000.0, 1.0)


class _Static(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the agent's server
    # As in the agent: without it a small (gzip) body waits 40 ms for a delayed ACK, and
    # the floor would be no floor.
    disable_nagle_algorithm = True
    plain = gz = b""

    def log_message(self, *args):
        pass

    def body(self, want_gzip: bool) -> bytes:
        return self.gz if want_gzip else self.plain

    def do_GET(self):
        want_gzip = "gzip" in (self.headers.get("Accept-Encoding") or "")
        body = self.body(want_gzip)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        if want_gzip:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body)


def _switchable_collector(exporter: Exporter, series: int) -> None:
    state = {"collect": False, "idle": True}
    cond = threading.Condition()

    def collect_while_told():
        while True:
            with cond:
                while not state["collect"]:
                    state["idle"] = True
                    cond.notify_all()
                    cond.wait()
                state["idle"] = False
            exporter.publish(snapshot(series))

    def obey():
        for line in sys.stdin:
            with cond:
                state["collect"] = line.strip() == "collect"
                cond.notify_all()
                while not state["collect"] and not state["idle"]:
                    cond.wait()
            print("ok", flush=True)

    threading.Thread(target=collect_while_told, daemon=True).start()
    threading.Thread(target=obey, daemon=True).start()


def main(kind: str, series: int) -> None:
    exporter = Exporter()
    exporter.publish(snapshot(series))
    if kind in ("mqwatch", "mqwatch-busy", "mqwatch-switchable"):
        from mqwatch.agent.backend import AgentBackend
        from mqwatch.agent.front import Front
        from mqwatch.agent.sockio import listen_socket

        if kind == "mqwatch-busy":
            def collect_forever():
                while True:
                    exporter.publish(snapshot(series))
            threading.Thread(target=collect_forever, daemon=True).start()
        elif kind == "mqwatch-switchable":
            _switchable_collector(exporter, series)

        agent = type("BenchAgent", (), {"exporter": exporter, "ready": lambda self: True})()
        # As `mqwatch run` serves: the HTTP server in its own child process, given each body.
        server = Front(AgentBackend(agent), listen_socket("127.0.0.1", 0))
        server.start()
        print(server.port, flush=True)
        threading.Event().wait()
        return
    if kind == "floor":
        handler = type("Floor", (_Static,), {"plain": exporter.body(), "gz": exporter.body(want_gzip=True)})
    elif kind == "generate_latest":
        registry = CollectorRegistry()
        registry.register(exporter)
        ProcessCollector(registry=registry)

        def body(self, want_gzip):
            text = generate_latest(registry)
            return gzip.compress(text, compresslevel=5) if want_gzip else text
        handler = type("AtScrape", (_Static,), {"body": body})
    else:
        raise SystemExit(f"unknown kind {kind}")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
