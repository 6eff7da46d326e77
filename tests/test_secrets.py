"""No secret ever leaves the process: known secrets are planted in every secret-bearing field
of all three checks, every path that prints or serves is driven, and none may appear.

Paths: `validate` (valid and invalid config), `check` in table/json/prom, `run` at DEBUG
with /status, /, /metrics, and the answer of POST /-/reload with an invalid config (which
quotes a malformed Redis URL carrying a password), plus the log of all of it.
"""

import json
import subprocess
import sys

import pytest

from mqwatch.agent.embedded import free_port
from mqwatch.agent.redact import MASK, redact, register_config_tree, register_secret
from tests.helpers import wait_until
from tests.test_agent import AgentProcess

SECRETS = {
    "redis_url_password": "PLANTrdsUrlPw1",
    "redis_url_param_password": "PLANTrdsParamPw2",
    "redis_url_ssl_password": "PLANTrdsSslPw3",
    "redis_password_file": "PLANTrdsFilePw4",
    "redis_malformed_url_password": "PLANTrdsBadUrl5",
    "kafka_sasl_password": "PLANTkfkSasl6",
    "kafka_password_file": "PLANTkfkFile7",
    "kafka_oauth_secret": "PLANTkfkOauth8",
    "kafka_ssl_key_password": "PLANTkfkKeyPw9",
    "pulsar_token": "PLANTplsTok10",
    "pulsar_token_file": "PLANTplsTokFile11",
    "pulsar_url_password": "PLANTplsUrlPw12",
    "pulsar_url_token": "PLANTplsUrlTok13",
    "pulsar_bad_admin_password": "PLANTplsAdm14",
    "pulsar_oauth2_client_secret": "PLANTplsOauthSecret15",
    "kafka_client_key_password": "PLANTkfkClientKeyPw16",
}


def _config(tmp_path, redis_server, pulsar_lite, dead_port, pki):
    s = SECRETS
    (tmp_path / "redis-pw").write_text(s["redis_password_file"] + "\n")
    (tmp_path / "kafka-pw").write_text(s["kafka_password_file"] + "\n")
    (tmp_path / "pulsar-token").write_text(s["pulsar_token_file"] + "\n")
    (tmp_path / "oauth-secret").write_text(s["pulsar_oauth2_client_secret"] + "\n")
    redis = redis_server.address
    return f"""agent: {{interval: 1s, timeout: 3s}}
checks:
  - kind: redis
    name: url-creds
    url: redis://app:{s['redis_url_password']}@{redis}/0?password={s['redis_url_param_password']}
  - kind: redis
    name: file-creds
    url: redis://{redis}/0?ssl_password={s['redis_url_ssl_password']}
    password_file: {tmp_path / 'redis-pw'}
  - kind: redis
    name: tls-creds
    url: rediss://127.0.0.1:{dead_port}/0
    tls: {{ca_file: {pki.ca}, cert_file: {pki.client_cert}, key_file: {pki.client_key_encrypted},
          key_password_file: {pki.key_password_file}}}
  - kind: kafka
    name: sasl
    bootstrap_servers: 127.0.0.1:{dead_port}
    client:
      security.protocol: SASL_PLAINTEXT
      sasl.mechanisms: PLAIN
      sasl.username: svc
      sasl.password: {s['kafka_sasl_password']}
      ssl.key.password: {s['kafka_ssl_key_password']}
      sasl.oauthbearer.client.secret: {s['kafka_oauth_secret']}
  - kind: kafka
    name: sasl-file
    bootstrap_servers: 127.0.0.1:{dead_port}
    client:
      security.protocol: SASL_PLAINTEXT
      sasl.mechanisms: PLAIN
      sasl.username: svc
      sasl.password_file: {tmp_path / 'kafka-pw'}
  - kind: kafka
    name: tls
    bootstrap_servers: 127.0.0.1:{dead_port}
    tls: {{ca_file: {pki.ca}, cert_file: {pki.client_cert}, key_file: {pki.client_key_encrypted},
          key_password_file: {pki.key_password_file}}}
    client:
      security.protocol: SSL
      ssl.key.password: {s['kafka_client_key_password']}
  - kind: pulsar
    name: oauth2
    metrics_url: {pulsar_lite.extra['metrics_url']}
    auth:
      oauth2: {{issuer_url: 'http://127.0.0.1:{dead_port}/', client_id: mqwatch,
               client_secret_file: {tmp_path / 'oauth-secret'}}}
  - kind: pulsar
    name: token
    metrics_url: {pulsar_lite.extra['metrics_url']}
    auth: {{token: {s['pulsar_token']}}}
  - kind: pulsar
    name: url-creds
    metrics_url: http://ops:{s['pulsar_url_password']}@127.0.0.1:{dead_port}/metrics?token={s['pulsar_url_token']}
    admin_url: http://127.0.0.1:{dead_port}
    auth: {{token_file: {tmp_path / 'pulsar-token'}}}
"""


def _invalid(config: str, dead_port: int) -> str:
    s = SECRETS
    return config.replace(
        "checks:\n",
        f"checks:\n  - kind: redis\n    name: malformed\n    url: redis//:{s['redis_malformed_url_password']}@host:1/0\n"
        f"  - kind: pulsar\n    name: bad-admin\n    metrics_url: http://127.0.0.1:{dead_port}/metrics\n"
        f"    admin_url: http://u:{s['pulsar_bad_admin_password']}@127.0.0.1:{dead_port}/x/y?token={s['pulsar_token']}\n", 1)


def _tls_secrets(pki) -> dict:
    """The tls: block's secrets: the key password, and the (encrypted) private key's PEM body."""
    from tests.pki import KEY_PASSWORD

    with open(pki.client_key_encrypted) as fh:
        body = [line for line in fh.read().splitlines() if line and not line.startswith("-----")]
    return {"tls_key_password_file": KEY_PASSWORD, "tls_key_file_pem": body[1]}


def _assert_clean(where: str, text: str):
    leaked = [name for name, value in SECRETS.items() if value in text]
    assert not leaked, f"{where} leaks {leaked}"


def _mqwatch(*args):
    return subprocess.run([sys.executable, "-m", "mqwatch.agent", *args], capture_output=True, text=True, timeout=90)


def test_planted_secrets_appear_on_no_path(tmp_path, redis_server, pulsar_lite, pki, monkeypatch):
    monkeypatch.setattr("tests.test_secrets.SECRETS", {**SECRETS, **_tls_secrets(pki)})
    dead_port = free_port()
    good = tmp_path / "mqwatch.yaml"
    good.write_text(_config(tmp_path, redis_server, pulsar_lite, dead_port, pki))
    bad = tmp_path / "bad.yaml"
    bad.write_text(_invalid(good.read_text(), dead_port))

    v = _mqwatch("validate", "-c", str(good))
    assert v.returncode == 0, v.stderr
    _assert_clean("validate (valid)", v.stdout + v.stderr)

    v = _mqwatch("validate", "-c", str(bad))
    assert v.returncode == 2 and "checks[0].url" in v.stderr and "checks[1].admin_url" in v.stderr, v.stderr
    assert "redis//***@host:1/0" in v.stderr  # the key and what is wrong are still there
    _assert_clean("validate (invalid)", v.stdout + v.stderr)

    for fmt in ("table", "json", "prom"):
        c = _mqwatch("check", "-c", str(good), "--format", fmt)
        assert c.returncode == 1, c.stderr  # the dead-port checks fail: their errors are printed
        _assert_clean(f"check --format {fmt}", c.stdout + c.stderr)
        if fmt == "json":
            failed = {d["name"]: d["error"] for d in json.loads(c.stdout) if not d["ok"]}
            assert {"url-creds", "tls-creds", "sasl"} <= set(failed), failed

    agent = AgentProcess(good, free_port(), args=["--log-level", "debug", "--web.enable-lifecycle"])
    try:
        agent.wait_ready(timeout=30)

        def failing_checks():
            doc = json.loads(agent.get("/status")[1])
            return {c["kind"] + "/" + c["name"] for c in doc["checks"] if c["last_error"]}
        # Each failing check has published its error, which quotes what its client library said.
        wait_until(lambda: {"redis/url-creds", "redis/tls-creds", "kafka/sasl", "kafka/tls", "pulsar/url-creds",
                            "pulsar/oauth2"} <= failing_checks(), 30,
                   message="errors of the failing checks")
        for path in ("/status", "/", "/metrics"):
            status, body, _ = agent.get(path)
            assert status == 200
            _assert_clean(path, body.decode())
        bad_text = bad.read_text()
        good.write_text(bad_text)
        status, body, _ = agent.get("/-/reload", data=b"")
        assert status == 400 and b"checks[0].url" in body
        _assert_clean("reload answer", body.decode())
    finally:
        err = agent.stop()
    assert "reload_rejected" in err and "level=debug" in err
    _assert_clean("log", err)


def test_registered_secret_is_masked_in_any_text_a_library_produces():
    register_secret("lib-echoed-Secret-42")
    assert redact("AUTH failed: invalid password 'lib-echoed-Secret-42' for user x") == \
        f"AUTH failed: invalid password '{MASK}' for user x"


@pytest.mark.parametrize("text, hidden, kept", [
    ("'redis//:Mal0rmed@host:1/0' is not valid", "Mal0rmed", "host:1/0"),
    ("redis:NoSlash99@host:6379", "NoSlash99", "host:6379"),
    ("rediss://u:pw%40x@cache:6380/0", "pw%40x", "cache:6380"),
    ("redis://:p@ss@word@cache/0", "ss@word", "cache/0"),
    ("https://h/m?ssl_password=Kp1&password=Pw2&x=1&authToken=T3&db_key=K4", "Kp1 Pw2 T3 K4", "x=1"),
    ("sasl.oauthbearer.client.secret=Oa5 sasl.password: Sp6", "Oa5 Sp6", "sasl.password"),
    ("Authorization: Bearer eyJ.tok.en", "eyJ.tok.en", "Authorization"),
])
def test_redaction_by_shape(text, hidden, kept):
    out = redact(text)
    for h in hidden.split():
        assert h not in out, out
    assert kept in out and redact(out) == out


def test_config_secrets_are_registered_but_user_data_is_not(tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n")
    register_config_tree({"checks": [{
        "client": {"sasl.oauthbearer.config": "principal=SaslCfg7", "ssl.keystore.password": "Keystore8"},
        "dlq": {"topics": {"auth-events.dlq": "auth-events-source"}},
        "canary": {"key": "mqwatch:canary-key"},
        "tls": {"key_file": str(key), "cert_file": "/nonexistent"},
    }]})
    out = redact("principal=SaslCfg7 Keystore8 MIIEvQIBADANBgkqhkiG9w0BAQEFAASC auth-events-source mqwatch:canary-key")
    assert "SaslCfg7" not in out and "Keystore8" not in out and "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in out
    assert "auth-events-source" in out and "mqwatch:canary-key" in out


# ---- property: whatever the secret and wherever it sits, it does not come out ----------------

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@pytest.fixture
def private_registry():
    """Random secrets must not stay registered: they would mask other tests' text in this process."""
    from mqwatch.agent import redact as module

    saved = set(module._registry._values)
    yield
    module._registry.clear()
    for value in saved:
        module._registry.add(value)


# `*` is left out: the mask itself is made of it, so a secret like `a***b` could be re-formed
# from its neighbours' masks; every other printable character is fair game.
_SECRET_CHARS = st.characters(min_codepoint=33, max_codepoint=0x2FF, blacklist_characters="*")
_URL_PW_CHARS = st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&()+,;=:%@/")
_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=st.text(_SECRET_CHARS, min_size=6, max_size=40), before=_TEXT, after=_TEXT)
def test_a_registered_secret_never_survives_redaction(private_registry, secret, before, after):
    register_secret(secret)
    assert secret not in redact(before + secret + after)


@settings(max_examples=200, deadline=None)
@example(password="/", scheme="redis", mangle=":{}@", before="")  # found by hypothesis: `redis:/@cache` showed "/"
@given(password=st.text(_URL_PW_CHARS, min_size=1, max_size=30), scheme=st.sampled_from(["redis", "rediss", "http"]),
       mangle=st.sampled_from(["://u:{}@", "//:{}@", ":{}@", "://{}@", "://u:x@h/0?password={}&db=1"]),
       before=st.sampled_from(["", "error: '", "url=", "cannot connect to "]))
def test_url_credentials_are_masked_by_shape_without_being_registered(password, scheme, mangle, before):
    text = f"{before}{scheme}{mangle.format(password)}cache:6379/0 failed"
    out = redact(text)
    assert MASK in out and "cache:6379/0 failed" in out
    if len(password) >= 3 and "&" not in password and ";" not in password:
        assert f":{password}@" not in out and f"={password}&" not in out and f"//{password}@" not in out
