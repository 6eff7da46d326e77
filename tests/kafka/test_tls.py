"""Kafka through TLS with client certificates: right CA, wrong CA, no client certificate,
a plaintext client; each failure says why (reason tls) and says it fast.

tansu 0.6 cannot terminate TLS itself, so a small TLS-terminating proxy from the test suite
(tests/tlsproxy.py, Python's ssl module requiring a client certificate from the test CA)
stands in front of it, and tansu advertises the proxy's address so every connection the
client makes, bootstrap and broker, goes through TLS.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from mqwatch.agent.embedded import free_port, wait_for_port
from mqwatch.checks.kafka.embedded import tansu_binary
from tests.helpers import collect_once, make_check, unique
from tests.tlsproxy import TlsProxy, server_context


@pytest.fixture(scope="module")
def tls_kafka(pki):
    inner, outer = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="mqwatch-tansu-tls-")
    proc = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{inner}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{outer}", "--silent"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_port(inner, 20, proc)
    proxy = TlsProxy(inner, server_context(pki, require_client_cert=True), port=outer).start()
    yield f"127.0.0.1:{outer}"
    proxy.stop()
    proc.terminate()
    proc.wait(10)


def _client_conf(bootstrap, pki) -> dict:
    return {"bootstrap.servers": bootstrap, "security.protocol": "ssl", "ssl.ca.location": pki.ca,
            "ssl.certificate.location": pki.client_cert, "ssl.key.location": pki.client_key}


def _lag_of_three(bootstrap, pki) -> tuple[str, str]:
    topic, group = unique("tls-orders"), unique("tls-billing")
    conf = _client_conf(bootstrap, pki)
    admin = AdminClient(conf)  # held: a collected client cancels its own futures
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(timeout=20)
    p = Producer({**conf, "batch.num.messages": 1, "linger.ms": 0})  # tansu: one record per batch
    for _ in range(5):
        p.produce(topic, b"order", partition=0)
    assert p.flush(20) == 0
    c = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    c.close()
    return topic, group


def _check(bootstrap, topic, **options):
    return {"kind": "kafka", "name": "secure", "bootstrap_servers": bootstrap, "timeout": "8s",
            "topics": {"include": [f"^{topic}$"]}, "time_lag": "off", **options}


def test_tls_with_client_certificate_reports_lag(tls_kafka, pki):
    topic, group = _lag_of_three(tls_kafka, pki)
    tls = {"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key_encrypted,
           "key_password_file": pki.key_password_file}
    snap = collect_once(_check(tls_kafka, topic, tls=tls))
    assert snap.ok, snap.errors
    assert snap.value("mqwatch_consumer_lag_messages", queue=topic, consumer=group) == 3


@pytest.mark.parametrize("case", ["wrong_ca", "no_client_cert", "plaintext"])
def test_tls_failures_name_the_cause(tls_kafka, pki, case, caplog):
    topic = unique("tls-none")
    options = {
        "wrong_ca": {"tls": {"ca_file": pki.other_ca, "cert_file": pki.client_cert, "key_file": pki.client_key}},
        "no_client_cert": {"tls": {"ca_file": pki.ca}},
        "plaintext": {},
    }[case]
    _, check = make_check(_check(tls_kafka, topic, **options))
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG, logger="mqwatch.librdkafka"):
        snap = collect_once(check)
        took = time.monotonic() - started
        during = [r.getMessage() for r in caplog.records if r.name == "mqwatch.librdkafka"]
        check.close()
    assert not snap.ok
    reason, message = snap.errors[0]
    assert reason == "tls", snap.errors
    expected = {"wrong_ca": "certificate verify failed", "no_client_cert": "certificate", "plaintext": "expects TLS"}[case]
    assert expected in message, message
    # librdkafka's lines reached the log during the collection, not at shutdown, each text once.
    assert during and len(during) == len(set(during)), during
    assert took < 6, f"a TLS failure should end the collection early, took {took:.1f}s"


def test_sasl_failure_is_reason_auth_with_librdkafkas_words():
    """tansu's --authentication answers SCRAM with unknown-user for a user it does not know."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="mqwatch-tansu-sasl-")
    proc = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--authentication", "--silent"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, 20, proc)
        client = {"security.protocol": "sasl_plaintext", "sasl.mechanisms": "SCRAM-SHA-256",
                  "sasl.username": "intruder", "sasl.password": "not-the-password"}
        started = time.monotonic()
        snap = collect_once(_check(f"127.0.0.1:{port}", "none", client=client))
        assert not snap.ok and snap.errors[0][0] == "auth", snap.errors
        assert "SASL SCRAM authentication failed" in snap.errors[0][1] and "unknown-user" in snap.errors[0][1]
        assert "not-the-password" not in snap.errors[0][1]
        assert time.monotonic() - started < 6
    finally:
        proc.terminate()
        proc.wait(10)


def test_tls_block_maps_onto_librdkafka_and_client_keys_win(pki):
    from mqwatch.checks.kafka.client import base_config
    from tests.helpers import config_for

    def conf(tls, client=None):
        o = config_for({"kind": "kafka", "name": "k", "bootstrap_servers": "b:9093", "tls": tls,
                        "client": client or {}}).checks[0].options
        return base_config(list(o.bootstrap_servers), dict(o.client), 5.0, o.tls)

    c = conf({"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key_encrypted,
              "key_password_file": pki.key_password_file})
    assert (c["security.protocol"], c["ssl.ca.location"], c["ssl.certificate.location"], c["ssl.key.location"],
            c["ssl.key.password"]) == ("ssl", pki.ca, pki.client_cert, pki.client_key_encrypted, "s3cret-key-pass")
    c = conf({"insecure_skip_verify": True}, {"sasl.mechanisms": "PLAIN", "ssl.endpoint.identification.algorithm": "https"})
    assert c["security.protocol"] == "sasl_ssl" and c["enable.ssl.certificate.verification"] is False
    assert c["ssl.endpoint.identification.algorithm"] == "https"  # client: wins over tls:
    assert "security.protocol" not in conf({})
