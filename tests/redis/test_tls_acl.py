"""Redis the way production runs it: TLS only (private CA), client certificates required,
and a least-privilege ACL user built from the grant documented in checks/redis/README.md.

Real redis-server processes (Debian's Redis 7, built with TLS) with `--port 0 --tls-port`;
certificates from tests/pki.py (openssl CLI).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time

import pytest
import redis

from mqwatch.agent.config import parse_config
from mqwatch.agent.embedded import free_port, wait_for_port
from mqwatch.agent.schema import ConfigErrors
from mqwatch.checks.redis.embedded import redis_server_binary
from tests.helpers import collect_once

README = os.path.join(os.path.dirname(__file__), "..", "..", "checks", "redis", "README.md")


def _grant_line() -> str:
    text = open(README, encoding="utf-8").read()
    lines = [ln for ln in text.splitlines() if ln.startswith("ACL SETUSER mqwatch ")]
    assert len(lines) == 1, "the README documents exactly one ACL SETUSER line"
    return lines[0]


class TlsRedis:
    def __init__(self, pki, client_certs: str):
        self.port, self.pki = free_port(), pki
        self.workdir = tempfile.mkdtemp(prefix="mqwatch-redis-tls-")
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", pki.server_cert, "--tls-key-file", pki.server_key, "--tls-ca-cert-file", pki.ca,
             "--tls-auth-clients", client_certs, "--dir", self.workdir, "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(self.port, 20, self.proc)
        # The test's own admin connection, always with a client certificate.
        self.admin = redis.Redis(host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=pki.ca,
                                 ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key)

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def stop(self):
        self.admin.close()
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def tls_redis(pki):
    server = TlsRedis(pki, "optional")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_redis(pki):
    server = TlsRedis(pki, "yes")
    yield server
    server.stop()


def _populate(r):
    r.flushall()
    r.rpush("jobs:email", "a", "b", "c")
    r.zadd("delay:retry", {"x": time.time() - 60})
    r.xadd("stream:orders", {"n": "1"})
    r.xadd("stream:orders", {"n": "2"})
    r.xgroup_create("stream:orders", "billing", id="0")
    r.xreadgroup("billing", "worker-1", {"stream:orders": ">"}, count=1)
    r.rpush("orders:dead", '{"reason": "timeout"}')
    # Each framework's layout, so the grant is checked against every read the check makes.
    now = time.time()
    r.sadd("queues", "mailers")
    r.rpush("queue:mailers", json.dumps({"class": "Mail", "queue": "mailers", "enqueued_at": now}))
    r.zadd("dead", {json.dumps({"class": "Mail", "queue": "mailers", "error_class": "Boom"}): now})
    r.zadd("schedule", {json.dumps({"class": "Mail"}): now + 60})
    r.sadd("rq:queues", "rq:queue:default")
    r.rpush("rq:queue:default", "job1")
    r.hset("rq:job:job1", mapping={"enqueued_at": "2026-01-01T00:00:00.000000Z", "ended_at": "2026-01-01T00:00:01Z"})
    r.zadd("rq:failed:default", {"job1": now + 3600})
    r.hset("bull:mail:meta", "opts.maxLenEvents", 10000)
    r.rpush("bull:mail:wait", "1")
    r.hset("bull:mail:1", mapping={"timestamp": int(now * 1000), "failedReason": "boom"})
    r.zadd("bull:mail:failed", {"1": int(now * 1000)})
    r.sadd("_kombu.binding.celery", "celery\x06\x16\x06\x16celery")
    r.rpush("celery", "{}")
    r.hset("unacked", "tag1", "{}")
    r.zadd("unacked_index", {"tag1": now})


def _check(url, **options):
    return {"kind": "redis", "name": "tls", "url": url, "timeout": "5s", "frameworks": [], **options}


def test_tls_only_server_with_private_ca(tls_redis, pki):
    _populate(tls_redis.admin)
    snap = collect_once(_check(tls_redis.url, tls={"ca_file": pki.ca}))
    assert snap.ok and not snap.errors, snap.errors
    assert snap.value("mqwatch_queue_messages", queue="jobs:email") == 3
    assert snap.value("mqwatch_consumer_lag_messages", queue="stream:orders", consumer="billing") == 1

    # Without the private CA (the system store) or with another CA: a TLS error that says so.
    for tls in ({}, {"ca_file": pki.other_ca}):
        snap = collect_once(_check(tls_redis.url, tls=tls))
        assert not snap.ok and snap.errors[0][0] == "tls", snap.errors
        assert "certificate verify failed" in snap.errors[0][1]

    # server_name: the certificate names localhost and 127.0.0.1, not redis.example.
    snap = collect_once(_check(tls_redis.url, tls={"ca_file": pki.ca, "server_name": "redis.example"}))
    assert not snap.ok and snap.errors[0][0] == "tls" and "redis.example" in snap.errors[0][1]
    snap = collect_once(_check(tls_redis.url.replace("127.0.0.1", "localhost"),
                               tls={"ca_file": pki.ca, "server_name": "localhost"}))
    assert snap.ok, snap.errors


def test_client_certificate_required(mtls_redis, pki):
    _populate(mtls_redis.admin)
    # Encrypted key, its password from a file.
    tls = {"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key_encrypted,
           "key_password_file": pki.key_password_file}
    snap = collect_once(_check(mtls_redis.url, tls=tls))
    assert snap.ok and not snap.errors, snap.errors
    assert snap.value("mqwatch_queue_messages", queue="jobs:email") == 3

    snap = collect_once(_check(mtls_redis.url, tls={"ca_file": pki.ca}))
    assert not snap.ok and snap.errors[0][0] == "tls", snap.errors
    assert "certificate" in snap.errors[0][1].lower()


def test_documented_acl_grant_is_enough_and_exactly_what_is_used(tls_redis, pki):
    r = tls_redis.admin
    _populate(r)
    r.execute_command(*_grant_line().replace(">CHANGE-ME", ">pw-readonly").split())
    full = collect_once(_check(tls_redis.url, tls={"ca_file": pki.ca}, frameworks=["sidekiq", "rq", "bullmq", "celery"]))
    r.config_resetstat()
    ro = collect_once(_check(tls_redis.url, tls={"ca_file": pki.ca}, username="mqwatch", password="pw-readonly",
                             frameworks=["sidekiq", "rq", "bullmq", "celery"]))
    assert ro.ok and not ro.errors, ro.errors
    assert _series(ro) == _series(full)
    assert {labels["framework"] for labels, _ in ro.samples("mqwatch_redis_queue_framework")} == {
        "sidekiq", "rq", "bullmq", "celery"}
    # Nothing the read-only user ran was refused but CLIENT SETNAME, which it may lack.
    stats = r.info("commandstats")
    refused = {k: v for k, v in stats.items() if v.get("rejected_calls", 0) or v.get("failed_calls", 0)}
    used = {k.removeprefix("cmdstat_") for k in stats}
    granted = set(re.findall(r"\+([a-z|]+)", _grant_line()))
    assert refused.keys() <= {"cmdstat_client|setname"}, refused
    assert used - {"client|setname", "config|resetstat", "info", "auth", "hello"} <= granted


def test_missing_grant_is_a_permission_error_naming_it(tls_redis, pki):
    r = tls_redis.admin
    _populate(r)
    line = _grant_line().replace(">CHANGE-ME", ">pw-partial").replace("ACL SETUSER mqwatch ", "ACL SETUSER partial ")
    r.execute_command(*line.replace(" +xinfo|groups", "").split())
    snap = collect_once(_check(tls_redis.url, tls={"ca_file": pki.ca}, username="partial", password="pw-partial"))
    assert ("permission", ) == tuple({reason for reason, _ in snap.errors}), snap.errors
    assert "xinfo|groups" in snap.errors[0][1] and "stream:orders" in snap.errors[0][1]
    assert snap.value("mqwatch_queue_messages", queue="jobs:email") == 3  # the rest is still reported

    # A key outside the user's patterns: named, never a silent `key_changed` or a vanished queue.
    r.execute_command(*line.replace("%R~*", "%R~jobs:* %R~delay:* %R~stream:*").split())
    snap = collect_once(_check(tls_redis.url, tls={"ca_file": pki.ca}, username="partial", password="pw-partial"))
    assert [reason for reason, _ in snap.errors] == ["permission"], snap.errors
    assert "orders:dead" in snap.errors[0][1]

    # Without INFO the whole collection fails, naming the command.
    r.execute_command(*line.replace(" +info", "").split())
    snap = collect_once(_check(tls_redis.url, tls={"ca_file": pki.ca}, username="partial", password="pw-partial"))
    assert not snap.ok and snap.errors[0][0] == "permission" and "'info'" in snap.errors[0][1], snap.errors


def test_tls_block_is_validated(pki, tmp_path):
    def errors(tls, url="rediss://127.0.0.1:6380/0"):
        doc = {"agent": {}, "checks": [_check(url, tls=tls)]}
        import yaml

        try:
            parse_config(yaml.safe_dump(doc), "mqwatch.yaml")
        except ConfigErrors as e:
            return [str(x) for x in e.errors]
        return []

    assert errors({"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key}) == []
    assert any("tls.ca_file" in e and "cannot read" in e for e in errors({"ca_file": str(tmp_path / "nope.pem")}))
    assert any("tls.ca_file" in e and "PEM" in e for e in errors({"ca_file": pki.key_password_file}))
    assert any("tls.key_file" in e and "both" in e for e in errors({"cert_file": pki.client_cert}))
    wrong = tmp_path / "wrong-pw"
    wrong.write_text("not-the-password\n")
    assert any("tls.key_file" in e and "key_password_file" in e for e in errors(
        {"cert_file": pki.client_cert, "key_file": pki.client_key_encrypted, "key_password_file": str(wrong)}))
    assert any("tls" in e and "rediss://" in e for e in errors({"ca_file": pki.ca}, url="redis://127.0.0.1:6379/0"))
    assert any("tls.ca_fle" in e and "did you mean ca_file" in e for e in errors({"ca_fle": pki.ca}))


def _series(snap):
    ignore = ("mqwatch_redis_connected_clients", "mqwatch_redis_uptime_seconds", "mqwatch_redis_used_memory_bytes",
              "mqwatch_consumer_idle_seconds", "mqwatch_pending_oldest_seconds", "mqwatch_consumer_lag_seconds",
              "mqwatch_delayed_overdue_seconds")
    return {(name, labels) for name, series in snap.families.items() if name not in ignore for labels, _ in series}


def test_url_secrets_never_reach_errors(tls_redis, pki):
    # A key password and a password in the url's query (redis-py reads both) are not shown.
    url = (f"{tls_redis.url}?ssl_ca_certs={pki.ca}&ssl_certfile={pki.client_cert}"
           f"&ssl_keyfile={pki.client_key_encrypted}&ssl_password=planted-key-pw&password=planted-pw")
    snap = collect_once(_check(url))
    assert not snap.ok
    assert snap.errors and all("planted" not in m for _, m in snap.errors), snap.errors


def test_every_command_the_check_sends_is_in_the_grant():
    """Static companion of the commandstats test: reads the check's source for the commands it
    queues (rounds.add(callback, "command", ...)) and sends directly, so a new read in any code
    path, even one the test data above does not reach, must be added to the documented grant."""
    import ast
    import pathlib

    granted = set(re.findall(r"\+([a-z|]+)", _grant_line()))
    used = {"info", "scan", "type"}  # RedisClient.info() and scan()
    for path in pathlib.Path(README).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add"
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)):
                method = node.args[1].value.lower()
                used.add({"xpending_range": "xpending"}.get(method, method.replace("xinfo_", "xinfo|")))
    assert used - granted == set(), f"commands the check uses but the README grant lacks: {used - granted}"


def test_documented_canary_grant_is_enough(tls_redis, pki):
    r = tls_redis.admin
    r.flushall()
    text = open(README, encoding="utf-8").read()
    extra = re.search(r"`(\+xadd [^`]+)`", text).group(1)
    line = _grant_line().replace(">CHANGE-ME", ">pw-canary").replace("ACL SETUSER mqwatch ", "ACL SETUSER canary ")
    r.execute_command(*(line + " " + extra).split())
    snap = collect_once(_check(tls_redis.url, tls={"ca_file": pki.ca}, username="canary", password="pw-canary",
                               canary={"enabled": True, "timeout": "2s"}))
    assert snap.ok and not snap.errors, snap.errors
    assert snap.samples("mqwatch_canary_roundtrip_seconds")
