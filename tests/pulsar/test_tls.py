"""Pulsar's HTTPS endpoints with a private CA, client certificates, a token and OAuth2.

The TLS side is real: tests/tlsproxy.py (Python's ssl, i.e. OpenSSL) terminates TLS in front
of pulsar-lite's real /metrics and in front of the admin-API FIXTURE (admin_fixture.py:
pulsar-lite has no admin API), which also checks the bearer token and serves behind a
reverse proxy's path prefix. The OAuth2 issuer is a small fixture too (no identity provider
is installable here); it answers the way Pulsar's ClientCredentialsFlow expects
(openid-configuration -> token_endpoint -> form POST -> access_token).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from tests.helpers import collect_once, unique
from tests.pulsar.admin_fixture import subscription_json, topic_stats_json
from tests.pulsar.workload import produce, subscribe_and_leave, wait_metric
from tests.tlsproxy import TlsProxy, server_context

NS = "persistent://public/default/"


@pytest.fixture
def https_admin(admin_fixture, pki):
    """The admin fixture behind TLS (client certificate optional) at https://127.0.0.1:P/pulsar."""
    admin_fixture.set_cluster()
    admin_fixture.add_topics({NS + "orders": topic_stats_json(10, 100, {"billing": subscription_json(4)})})
    admin_fixture.path_prefix = "/pulsar"
    admin_fixture.required_authorization = "Bearer secret-token"
    proxy = TlsProxy(int(admin_fixture.address.rsplit(":", 1)[1]), server_context(pki)).start()
    yield f"https://127.0.0.1:{proxy.port}/pulsar", admin_fixture
    proxy.stop()


def _check(**options):
    return {"kind": "pulsar", "name": "secure", "timeout": "8s", **options}


def test_https_metrics_with_private_ca(pulsar_lite, pulsar_client, pki):
    orders = unique("tls-orders")
    subscribe_and_leave(pulsar_client, orders, "billing")
    produce(pulsar_client, orders, 3)
    wait_metric(pulsar_lite.extra["metrics_url"], "pulsar_subscription_back_log", 3, topic=orders, subscription="billing")
    proxy = TlsProxy(pulsar_lite.extra["metrics_port"], server_context(pki)).start()
    try:
        url = f"https://127.0.0.1:{proxy.port}/metrics"
        snap = collect_once(_check(metrics_url=[url], tls={"ca_file": pki.ca}, auth={"token": "secret-token"}))
        assert snap.ok, snap.errors
        assert snap.value("mqwatch_pulsar_broker_healthy", broker=f"127.0.0.1:{proxy.port}") == 1
        assert snap.value("mqwatch_consumer_lag_messages", queue=NS + orders, consumer="billing") == 3

        for tls in ({}, {"ca_file": pki.other_ca}):  # the system store, or another CA
            snap = collect_once(_check(metrics_url=[url], tls=tls))
            assert not snap.ok and snap.errors[0][0] == "tls", snap.errors
            assert "CERTIFICATE_VERIFY_FAILED" in snap.errors[0][1] or "certificate verify failed" in snap.errors[0][1]
    finally:
        proxy.stop()


def test_https_admin_behind_a_path_prefix_with_token(https_admin, pki):
    url, fixture = https_admin
    snap = collect_once(_check(admin_url=url, tls={"ca_file": pki.ca}, auth={"token": "secret-token"}))
    assert snap.ok, snap.errors
    assert snap.value("mqwatch_consumer_lag_messages", queue=NS + "orders", consumer="billing") == 4
    assert fixture.requests and all(r.startswith("/pulsar/admin/v2/") for r in fixture.requests)

    # server_name: what the certificate must name (it names localhost and 127.0.0.1), also sent as SNI.
    tls = {"ca_file": pki.ca, "server_name": "localhost"}
    assert collect_once(_check(admin_url=url, tls=tls, auth={"token": "secret-token"})).ok
    snap = collect_once(_check(admin_url=url, tls={**tls, "server_name": "pulsar.example"}, auth={"token": "secret-token"}))
    assert not snap.ok and snap.errors[0][0] == "tls" and "pulsar.example" in snap.error, snap.errors

    snap = collect_once(_check(admin_url=url, tls={"ca_file": pki.ca}, auth={"token": "wrong-token"}))
    assert not snap.ok and snap.errors[0][0] == "auth" and "401" in snap.error
    assert "wrong-token" not in snap.error


def test_admin_with_client_certificate_required(admin_fixture, pki):
    admin_fixture.set_cluster()
    admin_fixture.add_topics({NS + "orders": topic_stats_json(10, 100, {"billing": subscription_json(2)})})
    proxy = TlsProxy(int(admin_fixture.address.rsplit(":", 1)[1]), server_context(pki, require_client_cert=True)).start()
    try:
        url = f"https://127.0.0.1:{proxy.port}"
        tls = {"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key_encrypted,
               "key_password_file": pki.key_password_file}
        snap = collect_once(_check(admin_url=url, tls=tls))
        assert snap.ok, snap.errors
        assert snap.value("mqwatch_consumer_lag_messages", queue=NS + "orders", consumer="billing") == 2

        snap = collect_once(_check(admin_url=url, tls={"ca_file": pki.ca}))
        assert not snap.ok and snap.errors[0][0] == "tls", snap.errors
    finally:
        proxy.stop()


class Issuer:
    """An OAuth2 issuer FIXTURE: discovery plus a client-credentials token endpoint."""

    def __init__(self, client_id: str, client_secret: str, token: str):
        self.forms: list[dict] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    return self._send(200, {"issuer": issuer.url, "token_endpoint": issuer.url + "/oauth/token"})
                self._send(404, {"error": "not_found"})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                issuer.forms.append(form)
                if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != (
                        "client_credentials", client_id, client_secret):
                    return self._send(401, {"error": "invalid_client"})
                self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

            def _send(self, status, doc):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


def test_oauth2_client_credentials_for_the_admin_api(https_admin, pki, tmp_path):
    url, fixture = https_admin
    issuer = Issuer("mqwatch", "s3cr3t-client", "secret-token")  # the admin fixture wants this token
    secret_file = tmp_path / "client-secret"
    secret_file.write_text("s3cr3t-client\n")
    try:
        oauth2 = {"issuer_url": issuer.url, "client_id": "mqwatch", "client_secret_file": str(secret_file),
                  "audience": "urn:pulsar:test"}
        snap = collect_once(_check(admin_url=url, tls={"ca_file": pki.ca}, auth={"oauth2": oauth2}))
        assert snap.ok, snap.errors
        assert snap.value("mqwatch_consumer_lag_messages", queue=NS + "orders", consumer="billing") == 4
        assert len(issuer.forms) == 1 and issuer.forms[0]["audience"] == "urn:pulsar:test"  # one token, reused

        bad = {**oauth2, "client_secret": "wrong"}
        del bad["client_secret_file"]
        snap = collect_once(_check(admin_url=url, tls={"ca_file": pki.ca}, auth={"oauth2": bad}))
        assert not snap.ok and snap.errors[0][0] == "auth" and "invalid_client" in snap.error, snap.errors
        assert "wrong" not in snap.error.replace("wrong-", "")
    finally:
        issuer.stop()


def test_pulsar_ssl_service_url_uses_the_tls_block(pulsar_lite, pki):
    """pulsar+ssl:// for the canary: pulsar-client makes the TLS handshake with tls.ca_file.

    pulsar-lite answers topic lookups without a TLS broker URL, so the canary's round trip
    cannot complete through the proxy; what is checked is that the handshake succeeds with
    the right CA and is refused with another, and that the failure is reported, not raised.
    """
    proxy = TlsProxy(pulsar_lite.port, server_context(pki)).start()
    try:
        def run(tls):
            return collect_once(_check(metrics_url=[pulsar_lite.extra["metrics_url"]], tls=tls,
                                       service_url=f"pulsar+ssl://127.0.0.1:{proxy.port}",
                                       canary={"enabled": True, "timeout": "3s"}))

        snap = run({"ca_file": pki.other_ca})
        assert proxy.connections == 0
        assert snap.ok and [r for r, _ in snap.errors] == ["canary_consume"], snap.errors
        run({"ca_file": pki.ca})
        assert proxy.connections >= 1
    finally:
        proxy.stop()


def test_tls_and_auth_settings_are_validated(pki, tmp_path):
    import yaml

    from mqwatch.agent.config import parse_config
    from mqwatch.agent.schema import ConfigErrors

    def errors(**options):
        doc = {"agent": {}, "checks": [_check(**options)]}
        try:
            cfg = parse_config(yaml.safe_dump(doc), "mqwatch.yaml")
        except ConfigErrors as e:
            return [str(x) for x in e.errors]
        return cfg

    cfg = errors(admin_url="https://gateway.example/pulsar/", tls={"ca_file": pki.ca, "cert_file": pki.client_cert,
                 "key_file": pki.client_key_encrypted, "key_password_file": pki.key_password_file},
                 auth={"oauth2": {"issuer_url": "https://auth.example", "client_id": "a", "client_secret": "planted-secret"}})
    assert not isinstance(cfg, list), cfg
    shown = repr(cfg.checks[0].options)
    assert "planted-secret" not in shown and "s3cret-key-pass" not in shown  # Section repr redacts secrets
    assert any("auth.oauth2.client_secret" in e and "need issuer_url, client_id and client_secret" in e
               for e in errors(metrics_url=["http://b:8080/metrics"], auth={"oauth2": {"issuer_url": "https://a", "client_id": "x"}}))
    assert any("auth.token" in e and "not both" in e for e in errors(
        metrics_url=["http://b:8080/metrics"],
        auth={"token": "t", "oauth2": {"issuer_url": "https://a", "client_id": "x", "client_secret": "y"}}))
    assert any("checks[0].tls" in e and "https://" in e
               for e in errors(metrics_url=["http://b:8080/metrics"], tls={"ca_file": pki.ca}))
    assert any("tls.key_password" in e and "pulsar-client" in e for e in errors(
        metrics_url=["http://b:8080/metrics"], service_url="pulsar+ssl://b:6651",
        tls={"cert_file": pki.client_cert, "key_file": pki.client_key_encrypted, "key_password_file": pki.key_password_file}))
