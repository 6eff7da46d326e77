"""One agent process for the whole fault suite, watching five checks on real brokers (and one
fixture endpoint), so each fault can be judged against checks that must stay unaffected."""

from __future__ import annotations

import pytest

from mqwatch.agent.embedded import free_port
from mqwatch.checks.kafka.embedded import start_tansu
from mqwatch.checks.pulsar.embedded import start_pulsar_lite
from mqwatch.checks.redis.embedded import redis6_server_binary, start_redis
from tests.faults.endpoint import Endpoint
from tests.faults.stack import INTERVAL, TIMEOUT, AgentProcess, Watcher, value
from tests.helpers import wait_until

CHECKS = ("kafka/hung", "kafka/good", "redis/cache", "redis/cache6", "pulsar/events", "pulsar/fixture")
GOOD_METRICS = b'pulsar_in_messages_total{topic="orders",partition="-1",namespace="public/default"} 7\n'


class Stack:
    def __init__(self, tmp, good_tansu):
        self.hung_tansu = start_tansu()
        self.good_tansu = good_tansu
        self.redis = start_redis()
        self.redis6 = start_redis(binary=redis6_server_binary())  # Redis 6.2, beside Debian's 7
        self.pulsar = start_pulsar_lite()
        self.endpoint = Endpoint()
        self.endpoint.modes["/metrics"] = ("ok", GOOD_METRICS)
        self.config_path = tmp / "mqwatch.yaml"
        self.config_path.write_text(self.config())
        self.agent = AgentProcess(self.config_path, free_port())
        self.watch = Watcher(self.agent.url + "/metrics")

    def config(self, without: tuple = ()) -> str:
        checks = {
            "kafka/hung": f"""  - kind: kafka
    name: hung
    bootstrap_servers: {self.hung_tansu.address}
    topics: {{include: ['^faults-']}}
    groups: {{include: ['^faults-']}}
""",
            "kafka/good": f"""  - kind: kafka
    name: good
    bootstrap_servers: {self.good_tansu.address}
    topics: {{include: ['^faults-']}}
    groups: {{include: ['^faults-']}}
""",
            "redis/cache": f"""  - kind: redis
    name: cache
    url: redis://127.0.0.1:{self.redis.port}/0
    keys: ['jobs:*']
    dlq_keys: ['*:dead']
    frameworks: []
""",
            "redis/cache6": f"""  - kind: redis
    name: cache6
    url: redis://127.0.0.1:{self.redis6.port}/0
    keys: ['jobs:*']
    dlq_keys: ['*:dead']
    frameworks: []
""",
            "pulsar/events": f"""  - kind: pulsar
    name: events
    metrics_url: [{self.pulsar.extra["metrics_url"]}]
    request_timeout: 1s
""",
            # A FIXTURE endpoint standing in for a broker /metrics that misbehaves on demand.
            "pulsar/fixture": f"""  - kind: pulsar
    name: fixture
    metrics_url: [{self.endpoint.url("/metrics")}]
    request_timeout: 1s
    max_metrics_bytes: 10485760
""",
        }
        body = "".join(text for key, text in checks.items() if key not in without)
        return f"agent: {{interval: {INTERVAL:g}s, timeout: {TIMEOUT * 1000:g}ms}}\nchecks:\n{body}"

    def up(self, key: str, scrape=None):
        system, name = key.split("/")
        return value(scrape or self.watch.latest(), "mqwatch_up", system=system, cluster=name)

    def wait_up(self, key: str, want: float, timeout: float) -> float:
        """Seconds until mqwatch_up of `key` reads `want`."""
        import time

        t0 = time.monotonic()
        wait_until(lambda: self.up(key) == want, timeout, 0.05, f"mqwatch_up{{{key}}} == {want}")
        took = time.monotonic() - t0
        print(f"mqwatch_up{{{key}}} == {want:g} after {took:.2f}s")  # the figures, in -s / failure output
        return took

    def stop(self):
        self.watch.stop()
        self.agent.stop()
        for b in (self.hung_tansu, self.redis, self.redis6, self.pulsar):
            b.resume()
            b.stop()
        self.endpoint.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tansu):
    s = Stack(tmp_path_factory.mktemp("faults"), tansu)
    try:
        for key in CHECKS:
            s.wait_up(key, 1.0, 40)
        s.watch.failures.clear()  # refused while the agent was starting
        yield s
    finally:
        s.stop()
