"""`mqwatch run` serves HTTP from a child process (agent.front): scrapes never wait for the agent,
the port survives the child, and the child does not survive the agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest

from mqwatch.agent import front
from mqwatch.agent.app import Agent
from mqwatch.agent.backend import AgentBackend
from mqwatch.agent.config import parse_config
from mqwatch.agent.embedded import free_port
from mqwatch.agent.sockio import listen_socket
from tests.helpers import wait_until

CONFIG = """agent:
  interval: 0.5s
checks:
  - kind: redis
    name: {name}
    url: redis://127.0.0.1:{dead_port}
    timeout: 1s
"""


def _get(port: int, path: str, timeout: float = 5.0, method: str = "GET") -> tuple[int, bytes, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def _serving_child(agent_pid: int) -> psutil.Process | None:
    for child in psutil.Process(agent_pid).children():
        try:
            if any("mqwatch.agent.front" in part for part in child.cmdline()):
                return child
        except psutil.Error:
            pass
    return None


@pytest.fixture
def agent(tmp_path):
    """`mqwatch run` with one Redis check whose server is down (collections fail fast and keep
    coming), on a free port, with the lifecycle API."""
    procs = []

    def start(name: str = "orders"):
        cfg = tmp_path / "mqwatch.yaml"
        cfg.write_text(CONFIG.format(name=name, dead_port=free_port()))
        port = free_port()
        log = open(tmp_path / "agent.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "mqwatch.agent", "run", "-c", str(cfg), "--listen",
                                 f"127.0.0.1:{port}", "--web.enable-lifecycle"], stdout=log, stderr=log)
        procs.append(proc)
        wait_until(lambda: _reachable(port) and b"mqwatch_up{" in _get(port, "/metrics")[1], 30,
                   message="agent serving its first collection")
        return proc, port, cfg

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def _reachable(port: int) -> bool:
    try:
        return _get(port, "/healthz", timeout=2)[0] == 200
    except OSError:
        return False


def test_every_endpoint_is_served_through_the_child_and_reload_reaches_the_agent(agent):
    proc, port, cfg = agent()
    child = _serving_child(proc.pid)
    assert child is not None, "no serving child"
    status, body, ctype = _get(port, "/status")
    assert status == 200 and ctype == "application/json"
    assert [c["name"] for c in json.loads(body)["checks"]] == ["orders"]
    status, body, ctype = _get(port, "/")
    assert status == 200 and ctype.startswith("text/html") and b"orders" in body
    assert _get(port, "/readyz")[0] == 200
    assert _get(port, "/nope")[0] == 404

    cfg.write_text(cfg.read_text().replace("name: orders", "name: payments"))
    status, body, _ = _get(port, "/-/reload", method="POST")
    assert status == 200 and b"reloaded 1 checks" in body
    wait_until(lambda: b'cluster="payments"' in _get(port, "/metrics")[1], 10, message="reloaded check scraped")
    assert [c["name"] for c in json.loads(_get(port, "/status")[1])["checks"]] == ["payments"]

    cfg.write_text("agent: [not a mapping\n")
    status, body, _ = _get(port, "/-/reload", method="POST")
    assert status == 400 and b"mqwatch.yaml" in body  # refused, and the running config stays
    assert b'cluster="payments"' in _get(port, "/metrics")[1]


def test_scrapes_are_answered_while_the_agent_cannot_run(agent):
    """The agent frozen (SIGSTOP, as a long GC pause or a collection holding the interpreter
    lock would, only longer): /metrics, /healthz and /readyz still answer at once."""
    proc, port, _ = agent()
    before = _get(port, "/metrics")[1]
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        for _ in range(5):
            t0 = time.monotonic()
            status, body, _ = _get(port, "/metrics", timeout=3)
            assert status == 200 and b"mqwatch_up{" in body and time.monotonic() - t0 < 2
        assert _get(port, "/healthz", timeout=3)[:2] == (200, b"ok\n")
        assert _get(port, "/readyz", timeout=3)[0] == 200
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    # And it catches up once the agent runs again: the scrape count moves on.
    wait_until(lambda: _get(port, "/metrics")[1] != before, 10, message="a newer body after the agent resumed")


def test_a_killed_serving_child_is_replaced_on_the_same_port(agent, tmp_path):
    proc, port, _ = agent()
    child = _serving_child(proc.pid)
    child.kill()
    # The listening socket is the agent's: connections wait in its backlog, none is refused.
    status, body, _ = _get(port, "/metrics", timeout=15)
    assert status == 200 and b"mqwatch_up{" in body
    replacement = _serving_child(proc.pid)
    assert replacement is not None and replacement.pid != child.pid
    assert "serving_child_died" in (tmp_path / "agent.log").read_text()


def test_the_child_ends_with_the_agent(agent):
    proc, port, _ = agent()
    child = _serving_child(proc.pid)
    proc.kill()  # no chance to clean up: the child must notice on its own
    proc.wait(10)
    child.wait(10)
    assert not _reachable(port)

    proc, port, _ = agent("second")
    child = _serving_child(proc.pid)
    t0 = time.monotonic()
    proc.terminate()
    assert proc.wait(20) == 0
    child.wait(10)
    assert time.monotonic() - t0 < 3  # the child is told at once, not killed after a grace period


@pytest.fixture
def in_process():
    """Starts a Front in this process, for an agent with no checks, and stops it after the test;
    a test patches agent.front's timings before starting it."""
    servers = []

    def start() -> front.Front:
        agent = Agent(parse_config("agent: {interval: 1s}\nchecks: []\n", "m.yaml", {}))
        server = front.Front(AgentBackend(agent), listen_socket("127.0.0.1", 0))
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def test_a_child_that_stops_taking_bodies_is_replaced(in_process, monkeypatch, caplog):
    """A collection handing over its body never hangs on the child: after SEND_TIMEOUT s the child
    is killed and a new one serves the latest body."""
    monkeypatch.setattr(front, "SEND_TIMEOUT", 1.0)
    server = in_process()
    stuck = psutil.Process(server.child_pid)
    stuck.suspend()

    def alive() -> bool:
        try:
            return stuck.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:  # killed and reaped already
            return False

    t0 = time.monotonic()
    while alive() and time.monotonic() - t0 < 30:
        server.push()  # each queues one small message until the child's socket is full
    assert time.monotonic() - t0 < 30, "the stuck child was not replaced"
    assert "serving_child_stuck" in caplog.text
    wait_until(lambda: server.child_pid != stuck.pid and _get(server.port, "/metrics", timeout=2)[0] == 200, 15,
               message="a new child serving")


def test_healthz_fails_when_the_agent_falls_silent(in_process, monkeypatch):
    """/metrics is served without the agent, but /healthz must still tell a liveness probe when the
    agent hangs: the child expects a heartbeat and answers 503 after SILENT_AFTER s without one."""
    monkeypatch.setattr(front, "HEARTBEAT", 3600.0)  # a hung agent: no heartbeat
    monkeypatch.setattr(front, "SILENT_AFTER", 2.0)
    server = in_process()
    assert _get(server.port, "/healthz")[:2] == (200, b"ok\n")
    wait_until(lambda: _get(server.port, "/healthz")[0] == 503, 10, message="/healthz failing")
    assert _get(server.port, "/metrics")[0] == 200
    server.push()  # the agent speaks again
    wait_until(lambda: _get(server.port, "/healthz")[0] == 200, 10, message="/healthz back")


def test_the_first_status_answered_lists_every_configured_check(tmp_path):
    """A client may connect as soon as the port is bound, before the serving child runs: it is
    queued, and the first answer it gets already knows the configured checks (a soak client
    taking min() over them failed on an empty list)."""
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text(CONFIG.format(name="orders", dead_port=free_port()))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mqwatch.agent", "run", "-c", str(cfg), "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, "never answered"
            try:
                status, body, _ = _get(port, "/status", timeout=10)
                break
            except OSError:
                time.sleep(0.01)
        assert status == 200 and [c["name"] for c in json.loads(body)["checks"]] == ["orders"]
    finally:
        proc.kill()
        proc.wait(10)
