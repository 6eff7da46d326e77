"""The status page as an on-call engineer sees it, rendered by headless Chromium."""

import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from mqwatch.agent.app import Agent
from mqwatch.agent.backend import AgentBackend
from mqwatch.agent.config import parse_config
from mqwatch.agent.embedded import free_port
from mqwatch.agent.metrics import DELAYED_OVERDUE_MESSAGES, DELAYED_OVERDUE_SECONDS, DLQ_MESSAGES, DLQ_REASON_MESSAGES
from mqwatch.agent.server import HTTPServer
from mqwatch.agent.snapshot import SnapshotBuilder
from tests.helpers import kafka_commit, kafka_create_topics, kafka_produce, unique, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args, timeout=60):
    profile = tempfile.mkdtemp(prefix="mqwatch-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def publish_queue_health(agent, round_no):
    """DLQ and delayed-queue series as a Redis check reports them (a synthetic snapshot: the
    Redis check has its own tests against redis-server; this test is about the page)."""
    b = SnapshotBuilder("redis", "jobs", (DLQ_MESSAGES, DLQ_REASON_MESSAGES, DELAYED_OVERDUE_MESSAGES, DELAYED_OVERDUE_SECONDS))
    b.add("mqwatch_dlq_messages", 3 + 4 * round_no, dlq="orders:dead", source="orders")
    b.add("mqwatch_dlq_reason_messages", 5, dlq="orders:dead", reason="PaymentDeclined")
    b.add("mqwatch_dlq_reason_messages", 2, dlq="orders:dead", reason="<script>alert(1)</script>")
    b.add("mqwatch_delayed_overdue_messages", 12, queue="delay:order-timeouts")
    b.add("mqwatch_delayed_overdue_seconds", 340 + 10 * round_no, queue="delay:order-timeouts")
    agent.exporter.publish(b.build(time.time(), 0.01))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by ./mqw test; run through it")
def test_status_page_shows_health_worst_consumers_dlqs_and_overdue_queues(kafka_bootstrap, fresh_tansu):
    orders, stuck = unique("orders"), unique("fulfilment")
    kafka_create_topics(kafka_bootstrap, {orders: 1})
    kafka_produce(kafka_bootstrap, orders, {0: 8})
    kafka_commit(kafka_bootstrap, stuck, {(orders, 0): 2})
    dead = fresh_tansu.address
    # The shop check sees only this test's group: other tests' groups on the shared broker,
    # some with hours of lag in seconds, would push it off the page's top rows.
    fresh_tansu.stop()
    cfg = parse_config(f"""
agent: {{interval: 500ms, timeout: 1s}}
checks:
  - {{kind: kafka, name: shop, bootstrap_servers: '{kafka_bootstrap}', groups: {{include: ['^{stuck}$']}}}}
  - {{kind: kafka, name: legacy, bootstrap_servers: '{dead}'}}
""", "page.yaml", {})
    agent = Agent(cfg)
    server = HTTPServer(AgentBackend(agent), "127.0.0.1", free_port())
    server.start()
    agent.start()
    try:
        wait_until(agent.ready, 15, message="both checks collected")
        for i in range(3):
            publish_queue_health(agent, i)
            time.sleep(0.6)
        url = f"http://127.0.0.1:{server.port}/"
        dom = chromium("--dump-dom", url).stdout
        os.makedirs(os.path.join(ROOT, "artifacts"), exist_ok=True)
        shot = os.path.join(ROOT, "artifacts", "status-page.png")
        chromium(f"--screenshot={shot}", "--window-size=1280,1000", "--hide-scrollbars", url)
    finally:
        agent.stop()
        server.stop()
    assert "1 check failing" in dom and "badge bad" in dom, re.search(r"<p id=.headline[^<]*", dom).group(0)
    assert "data-check=\"kafka/legacy\"" in dom and "<td class=\"health\">down</td>" in dom
    assert "data-check=\"kafka/shop\"" in dom and "<td class=\"health\">up</td>" in dom
    assert stuck in dom and "<td class=\"lag-messages\">6</td>" in dom
    assert "orders:dead" in dom and "PaymentDeclined (5)" in dom and "+8" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # label values are escaped, never executed
    assert "delay:order-timeouts" in dom and "<td class=\"overdue-seconds\">6.0m</td>" in dom
    assert "<polyline" in dom  # sparklines drew history
    assert 'http-equiv="refresh"' in dom
    assert os.path.getsize(shot) > 10_000


def test_delayed_queues_of_one_name_in_two_job_frameworks_are_two_rows():
    """RQ's and BullMQ's `default` are different queues: each row keeps its own overdue count."""
    from mqwatch.agent.exporter import Exporter
    from mqwatch.agent.statuspage import _delayed_table

    exporter = Exporter(process_metrics=False)
    b = SnapshotBuilder("redis", "jobs", (DELAYED_OVERDUE_MESSAGES, DELAYED_OVERDUE_SECONDS))
    for framework, overdue, seconds in (("rq", 3, 60), ("bullmq", 7, 30)):
        b.add("mqwatch_delayed_overdue_messages", overdue, queue="default", framework=framework)
        b.add("mqwatch_delayed_overdue_seconds", seconds, queue="default", framework=framework)
    exporter.publish(b.build(time.time(), 0.01))
    html = _delayed_table(exporter.states())
    rq_row, bullmq_row = html.split("<tr class='delayed'>")[1:]
    assert "default (rq)" in rq_row and "<td class='overdue-messages'>3</td>" in rq_row
    assert "default (bullmq)" in bullmq_row and "<td class='overdue-messages'>7</td>" in bullmq_row
