"""`mqwatch demo` as a new user runs it: brokers start, the agent sees the workload, Prometheus
fires the shipped alerts through Alertmanager to the demo's webhook receiver, the console stays
quiet (a banner, then only changes of state), and nothing is left running.

One demo run serves every assertion: it takes about two minutes, most of it waiting for the
delayed queue to go overdue (its poller stops 40 s in, the demo's threshold is 20 s, `for:` 10 s).
"""

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from mqwatch.agent.embedded import free_port
from tests.helpers import wait_until
from tests.ops.stack import prometheus_available

STATE_LINE = re.compile(r"^\d\d:\d\d:\d\d  (FIRING|RESOLVED|DOWN|UP)\s+\S")
MUST_FIRE = {
    # (alertname, system, the label naming the object, its value)
    ("MqwatchConsumerStopped", "kafka", "consumer", "fraud-check"),
    ("MqwatchDLQReceivingMessages", "kafka", "dlq", "orders.DLT"),
    ("MqwatchDLQReceivingMessages", "redis", "dlq", "jobs:inventory:dead"),
    ("MqwatchDelayedQueueOverdue", "redis", "queue", "delay:order-timeouts"),
    # issue 14: a poison message, entries trimmed unread, a consumer that never catches up
    ("MqwatchPoisonMessage", "redis", "consumer", "fraud-check"),
    ("MqwatchMessagesLost", "redis", "consumer", "analytics"),
    ("MqwatchConsumerNotDraining", "redis", "consumer", "ledger"),
}


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def lag(text, consumer):
    m = re.search(rf'mqwatch_consumer_lag_messages\{{cluster="shop",consumer="{consumer}",queue="orders",system="kafka"\}} ([0-9.e+]+)', text)
    return float(m.group(1)) if m else None


def fired(alerts):
    return {(name, system, key, value) for name, system, key, value in MUST_FIRE
            for a in alerts if a["labels"].get("alertname") == name and a["labels"].get("system") == system
            and a["labels"].get(key) == value}


class Output:
    """A child's stdout, read line by line as it comes (a full pipe would block the demo)."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def join(self):
        self._thread.join(30)


@pytest.mark.skipif(not prometheus_available(), reason="Debian prometheus/prometheus-alertmanager missing")
@pytest.mark.timeout(300)
def test_demo_fires_real_alerts_to_its_webhook_keeps_the_console_quiet_and_cleans_up(tmp_path):
    port, log_file = free_port(), tmp_path / "demo.log"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mqwatch.agent", "demo", "--listen", f"127.0.0.1:{port}",
                             "--log-file", str(log_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = Output(proc.stdout)
    brokers = []
    try:
        wait_until(lambda: any("Press Ctrl-C" in line for line in out.lines), 90, message="the banner")
        banner = "\n".join(out.lines)
        urls = dict(re.findall(r"^  (prometheus|alertmanager|webhook receiver)\s+(http://\S+)$", banner, re.M))
        assert f"http://127.0.0.1:{port}/" in banner and set(urls) == {"prometheus", "alertmanager", "webhook receiver"}, banner
        brokers = [int(p) for p in re.findall(r"at (?:pulsar://)?127\.0\.0\.1:(\d+)", banner)]
        assert len(brokers) == 3, banner

        def grown():
            text = get(f"http://127.0.0.1:{port}/metrics")
            stopped, slow, fast = lag(text, "fraud-check"), lag(text, "analytics"), lag(text, "inventory")
            return None not in (stopped, slow, fast) and stopped > slow > fast and stopped >= 20 and text
        text = wait_until(grown, timeout=60, interval=1, message="lag of the stopped group to pass the slow one")
        assert 'mqwatch_up{cluster="shop",system="kafka"} 1.0' in text

        # Through Alertmanager's own API: the alerts a user would be paged with.
        am = urls["alertmanager"]
        firing = wait_until(lambda: fired(json.loads(get(f"{am}/api/v2/alerts?active=true"))) == MUST_FIRE or None,
                            timeout=max(30.0, 180 - (time.monotonic() - started)), interval=2,
                            message=f"{sorted(MUST_FIRE)} firing in Alertmanager")
        assert firing
        # ... delivered to the demo's webhook receiver, with runbook links that open.
        def delivered():
            received = json.loads(get(urls["webhook receiver"]))
            return fired([a for a in received if a["status"] == "firing"]) == MUST_FIRE and received
        received = wait_until(delivered, timeout=30, interval=1, message="the webhook receiver got them")
        runbook = next(a["annotations"]["runbook_url"] for a in received
                       if a["labels"]["alertname"] == "MqwatchDelayedQueueOverdue")
        assert "# MqwatchDelayedQueueOverdue" in get(runbook)
        # ... and on the status page, under a headline that says what is wrong.
        page = get(f"http://127.0.0.1:{port}/")
        headline = re.search(r'<p id="headline" class="badge (\w+)"[^>]*>([^<]*)<', page)
        assert headline.group(1) == "bad", headline.group(0)
        assert re.search(r"\d+ consumers? stopped", headline.group(2)) and "delayed queue overdue" in headline.group(2)
        for name, *_ in MUST_FIRE:
            assert f">{name}</td>" in page
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.join()  # stdout is read by `out` alone; the demo writes nothing else to stderr
        err = proc.stderr.read()
    assert proc.returncode == 0, err
    lines = out.lines
    end = next(i for i, line in enumerate(lines) if "Press Ctrl-C" in line)
    after = lines[end + 1:]
    assert after[-1].startswith("mqwatch demo stopped; all embedded brokers are down.")
    changes = [line for line in after[:-1] if line.strip()]
    # One banner, then only changes of state: each alert once when it fires (and resolves)
    assert end < 35, lines[:end]
    assert all(STATE_LINE.match(line) for line in changes), changes
    for name, _, _, value in MUST_FIRE:
        assert any(f"FIRING    {name}" in line and value in line for line in changes), (name, changes)
    state = {}
    for line in changes:
        what, text = line[10:18].strip(), line[20:]
        assert state.get(text) != what, f"announced twice in a row: {line}"
        state[text] = what
    assert err.strip() == "", err
    # Client libraries' chatter went to the log file, not the console.
    log = log_file.read_text()
    assert "logger=mqwatch.demo.pulsar" in log and "logger=mqwatch.demo.pulsar" not in "\n".join(lines)
    for p in brokers:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", p)) != 0, f"broker on port {p} still running"
