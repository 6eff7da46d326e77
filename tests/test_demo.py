"""`mqwatch demo` as a new user runs it: brokers start, the agent sees the workload, nothing is left running."""

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from agent.embedded import free_port
from tests.helpers import wait_until


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def lag(text, consumer):
    m = re.search(rf'mqwatch_consumer_lag_messages\{{cluster="shop",consumer="{consumer}",queue="orders",system="kafka"\}} ([0-9.e+]+)', text)
    return float(m.group(1)) if m else None


def test_demo_shows_fast_slow_and_stopped_groups_then_cleans_up():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agent", "demo", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = ""
        deadline = time.monotonic() + 60
        while "Press Ctrl-C" not in banner and time.monotonic() < deadline:
            banner += proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in banner
        brokers = [int(p) for p in re.findall(r"at 127\.0\.0\.1:(\d+)", banner)]
        assert brokers, banner

        def grown():
            text = metrics(port)
            stopped, slow, fast = lag(text, "fraud-check"), lag(text, "analytics"), lag(text, "inventory")
            return None not in (stopped, slow, fast) and stopped > slow > fast and stopped >= 20 and text
        text = wait_until(grown, timeout=45, interval=1, message="lag of the stopped group to pass the slow one")
        assert 'mqwatch_up{cluster="shop",system="kafka"} 1.0' in text
        assert 'mqwatch_consumer_state{cluster="shop",consumer="fraud-check",state="Empty",system="kafka"} 1.0' in text
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "all embedded brokers are down" in out
    for p in brokers:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", p)) != 0, f"broker on port {p} still running"
