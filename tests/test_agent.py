"""The running agent as an operator meets it: HTTP endpoints, reload, isolation of a hung check."""

import gzip
import json
import re
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from mqwatch.agent.embedded import free_port
from tests.helpers import kafka_commit, kafka_create_topics, kafka_produce, unique, wait_until


def http(url, data=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


class AgentProcess:
    def __init__(self, config_path, port, args=()):
        self.port, self.config_path = port, config_path
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mqwatch.agent", "run", "-c", str(config_path), "--listen", f"127.0.0.1:{port}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def get(self, path, **kw):
        return http(self.base + path, **kw)

    def wait_ready(self, timeout=20):
        def ready():
            try:
                return self.get("/readyz")[0] == 200
            except OSError:
                return False
        wait_until(ready, timeout, message="agent ready")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.fixture
def shop(kafka_bootstrap):
    orders, group = unique("orders"), unique("billing")
    kafka_create_topics(kafka_bootstrap, {orders: 2})
    kafka_produce(kafka_bootstrap, orders, {0: 6, 1: 4})
    kafka_commit(kafka_bootstrap, group, {(orders, 0): 1, (orders, 1): 4})
    return orders, group


def kafka_yaml(name, bootstrap, extra=""):
    return f"  - kind: kafka\n    name: {name}\n    bootstrap_servers: {bootstrap}\n{extra}"


@pytest.fixture
def agent(tmp_path, kafka_bootstrap, shop):
    cfg = tmp_path / "mqwatch.yaml"
    # Only this test's group: the shared broker holds other tests' groups, some with hours of
    # lag in seconds, which would push this one off the status page's top rows.
    scope = f"    groups: {{include: ['^{shop[1]}$']}}\n"
    cfg.write_text("agent: {interval: 1s, timeout: 3s}\nchecks:\n" + kafka_yaml("shop", kafka_bootstrap, scope))
    proc = AgentProcess(cfg, free_port(), args=["--web.enable-lifecycle"])
    proc.wait_ready()
    yield proc
    proc.stop()


def test_endpoints_serve_metrics_health_status_and_page(agent, shop):
    orders, group = shop
    status, body, headers = agent.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert f'mqwatch_consumer_lag_messages{{cluster="shop",consumer="{group}",queue="{orders}",system="kafka"}} 5.0' in text
    assert 'mqwatch_up{cluster="shop",system="kafka"} 1.0' in text
    assert "process_resident_memory_bytes" in text
    status, gz, headers = agent.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip" and b"mqwatch_up" in gzip.decompress(gz)
    assert agent.get("/healthz")[:2] == (200, b"ok\n")
    doc = json.loads(agent.get("/status")[1])
    (check,) = doc["checks"]
    assert check["kind"] == "kafka" and check["name"] == "shop" and check["up"] is True
    assert check["series"] > 0 and check["last_success_age_seconds"] < 10 and doc["ready"] is True
    page = agent.get("/")[1].decode()
    assert "kafka" in page and "shop" in page and group in page
    assert agent.get("/nope")[0] == 404


def test_reload_applies_a_valid_config_and_rejects_an_invalid_one(agent, kafka_bootstrap):
    cfg = agent.config_path
    cfg.write_text(cfg.read_text() + kafka_yaml("shop2", kafka_bootstrap))
    status, body, _ = agent.get("/-/reload", data=b"")
    assert status == 200, body
    wait_until(lambda: {c["name"] for c in json.loads(agent.get("/status")[1])["checks"]} == {"shop", "shop2"},
               message="second check after reload")
    cfg.write_text(cfg.read_text().replace("bootstrap_servers", "bootstrap_serverz", 1))
    status, body, _ = agent.get("/-/reload", data=b"")
    assert status == 400 and b"unknown key (did you mean bootstrap_servers?)" in body
    time.sleep(1.5)
    doc = json.loads(agent.get("/status")[1])
    assert {c["name"]: c["up"] for c in doc["checks"]} == {"shop": True, "shop2": True}


def test_sighup_reloads_and_a_removed_check_vanishes(agent, kafka_bootstrap):
    cfg = agent.config_path
    cfg.write_text("agent: {interval: 1s, timeout: 3s}\nchecks:\n" + kafka_yaml("renamed", kafka_bootstrap))
    agent.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: 'cluster="renamed"' in agent.get("/metrics")[1].decode(), message="renamed check")
    assert 'cluster="shop"' not in agent.get("/metrics")[1].decode()


def test_reload_endpoint_exists_only_with_the_lifecycle_flag_and_sighup_always_works(tmp_path, kafka_bootstrap):
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text("agent: {interval: 1s, timeout: 3s}\nchecks:\n" + kafka_yaml("before", kafka_bootstrap))
    agent = AgentProcess(cfg, free_port())
    try:
        agent.wait_ready()
        cfg.write_text("agent: {interval: 1s, timeout: 3s}\nchecks:\n" + kafka_yaml("after", kafka_bootstrap))
        status, body, _ = agent.get("/-/reload", data=b"")
        assert status == 404 and b"--web.enable-lifecycle" in body
        time.sleep(1.5)  # the refused POST must not have reloaded
        assert 'cluster="before"' in agent.get("/metrics")[1].decode()
        agent.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: 'cluster="after"' in agent.get("/metrics")[1].decode(), message="SIGHUP reload")
    finally:
        agent.stop()


def test_a_hung_broker_blocks_neither_scrapes_nor_other_checks(tmp_path, kafka_bootstrap, fresh_tansu, shop):
    fresh_tansu.pause()
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text("agent: {interval: 1s, timeout: 1500ms}\nchecks:\n" + kafka_yaml("good", kafka_bootstrap)
                   + kafka_yaml("hung", fresh_tansu.address))
    agent = AgentProcess(cfg, free_port())
    try:
        agent.wait_ready(timeout=20)
        for _ in range(5):
            t0 = time.monotonic()
            text = agent.get("/metrics", timeout=2)[1].decode()
            # a scrape that waited for the hung collection would take its whole 1.5 s timeout
            assert time.monotonic() - t0 < 1.0
            time.sleep(0.3)
        assert 'mqwatch_up{cluster="good",system="kafka"} 1.0' in text
        assert 'mqwatch_up{cluster="hung",system="kafka"} 0.0' in text
        assert re.search(r'mqwatch_collect_errors_total\{cluster="hung",reason="\w+",system="kafka"\} [1-9]', text)
        hung = [c for c in json.loads(agent.get("/status")[1])["checks"] if c["name"] == "hung"][0]
        assert hung["up"] is False and hung["last_error"]
    finally:
        err = agent.stop()
    assert "collect_failed check=kafka/hung" in err


def test_run_with_a_broken_config_exits_2_naming_the_problem(tmp_path):
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text("checks:\n  - kind: kafka\n    name: x\n")
    run = subprocess.run([sys.executable, "-m", "mqwatch.agent", "run", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert f"{cfg}:2: checks[0].bootstrap_servers: required key is missing" in run.stderr


def test_check_exits_1_when_a_check_fails_and_still_prints(tmp_path, fresh_tansu, kafka_bootstrap):
    address = fresh_tansu.address
    fresh_tansu.stop()
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text("agent: {timeout: 2s}\nchecks:\n" + kafka_yaml("good", kafka_bootstrap) + kafka_yaml("down", address))
    run = subprocess.run([sys.executable, "-m", "mqwatch.agent", "check", "-c", str(cfg), "--format", "json"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    doc = {c["name"]: c for c in json.loads(run.stdout)}
    assert doc["good"]["ok"] is True and doc["down"]["ok"] is False
    assert doc["down"]["errors"][-1]["reason"] in ("connection", "timeout")
    assert "check kafka/down failed:" in run.stderr


def test_secrets_never_reach_the_logs(tmp_path, fresh_tansu):
    address = fresh_tansu.address
    fresh_tansu.stop()
    secret_file = tmp_path / "pw"
    secret_file.write_text("hunter2-from-file")
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text("agent: {interval: 1s, timeout: 1s}\nchecks:\n" + kafka_yaml(
        "down", address,
        f"    client:\n      sasl.username: svc\n      sasl.password_file: {secret_file}\n      security.protocol: SASL_PLAINTEXT\n      sasl.mechanisms: PLAIN\n"))
    env = {**os.environ, "MQWATCH_TEST": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mqwatch.agent", "run", "-c", str(cfg), "--listen", f"127.0.0.1:{free_port()}", "--log-level", "debug"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert "collect_failed check=kafka/down" in err
    assert "hunter2" not in err + out


def test_scrub_removes_credentials_from_log_lines():
    from mqwatch.agent.redact import redact as scrub

    line = "error connecting redis://app:pa55w0rd@cache:6379/0 with sasl.password=topsecret token: abc123"
    cleaned = scrub(line)
    assert "pa55w0rd" not in cleaned and "topsecret" not in cleaned and "abc123" not in cleaned
    assert "redis://app:***@cache:6379/0" in cleaned


FREEZE_PROBE = """
import gc, json, sys
from mqwatch.agent.app import Agent
from mqwatch.agent.config import parse_config
cfg = parse_config("agent: {interval: 60s}\\nchecks:\\n  - {kind: kafka, name: k, bootstrap_servers: '127.0.0.1:1'}\\n",
                   "t.yaml")
agent = Agent(cfg)
agent.start(freeze=sys.argv[1] == "freeze")
check = next(iter(agent.runners.values())).check
print(json.dumps({"walked": len(gc.get_objects()), "check_walked": any(o is check for o in gc.get_objects())}))
agent.stop()
"""


def test_started_agent_keeps_its_startup_objects_out_of_full_gc_passes():
    """`mqwatch run` freezes what exists once its checks are built (modules, config, the checks'
    clients): a full garbage-collector pass walked all of it in every collection (26-85 ms of a
    fresh 10k-partition Kafka collection). In-process agents (tests, embedding) freeze nothing."""
    def probe(mode):
        out = subprocess.run([sys.executable, "-c", FREEZE_PROBE, mode], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    plain, frozen = probe("plain"), probe("freeze")
    assert plain["check_walked"] and not frozen["check_walked"]
    assert frozen["walked"] < plain["walked"] / 4, (plain, frozen)


RELOAD_PROBE = """
import gc, json, sys, time, weakref
from mqwatch.agent.app import Agent
from mqwatch.agent.config import load_config
path = sys.argv[1]
def write(port):
    open(path, "w").write("agent: {interval: 60s}\\nchecks:\\n  - {kind: kafka, name: k, bootstrap_servers: '127.0.0.1:%d', timeout: 2s}\\n" % port)
write(1)
agent = Agent(load_config(path))
agent.start(freeze=True)
check = weakref.ref(next(iter(agent.runners.values())).check)
write(2)  # another cluster: the check is replaced
ok, _ = agent.reload()
deadline = time.monotonic() + 20
while check() is not None and time.monotonic() < deadline:
    gc.collect()
    time.sleep(0.2)
print(json.dumps({"reloaded": ok, "replaced_check_freed": check() is None}))
agent.stop()
"""


def test_a_check_replaced_by_a_reload_is_freed_after_a_frozen_start(tmp_path):
    """The start-up freeze must not keep a check a reload replaces, with all it holds."""
    out = subprocess.run([sys.executable, "-c", RELOAD_PROBE, str(tmp_path / "mqwatch.yaml")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"reloaded": True, "replaced_check_freed": True}
