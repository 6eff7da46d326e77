"""The agent's HTTP surface as an attacker or a careless client meets it: TLS-only with a web
config, basic auth with bcrypt hashes, client certificates, the lifecycle flag, and the
hardening of agent/server.py (timeouts, bounded handlers, bad Content-Length, q-values,
IPv6). Raw sockets where a well-behaved client library would hide the behaviour.
"""

import base64
import gzip
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time

import bcrypt
import pytest

from mqwatch.agent.app import Agent
from mqwatch.agent.backend import AgentBackend
from mqwatch.agent.config import parse_config
from mqwatch.agent.embedded import free_port
from mqwatch.agent.schema import ConfigErrors
from mqwatch.agent.server import HTTPServer, accepts_gzip
from mqwatch.agent.webconfig import load_web_config
from tests.helpers import wait_until

PASSWORD = "scrape-pw-1"
# Cost 4 keeps the suite fast; the hash format is the one htpasswd -B writes ($2y$).
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)


def _agent():
    return Agent(parse_config("agent: {interval: 1s}\nchecks: []\n", "m.yaml", {}))


@pytest.fixture
def serve():
    servers = []

    def start(web_yaml=None, tmp=None, host="127.0.0.1", **kw):
        web = None
        if web_yaml is not None:
            f = tmp / f"web-{len(servers)}.yml"
            f.write_text(web_yaml)
            web = load_web_config(str(f))
        server = HTTPServer(AgentBackend(_agent()), host, 0, web=web, **kw)
        server.start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


def _tls_yaml(pki, extra_tls="", users=True):
    text = f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n{extra_tls}"
    if users:
        text += f"basic_auth_users:\n  prometheus: {HASH}\n"
    return text


def _client_ctx(pki, cert=None, max_version=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert == "client":
        ctx.load_cert_chain(pki.client_cert, pki.client_key)
    elif cert == "intruder":  # a certificate no CA the server trusts has signed
        ctx.load_cert_chain(pki.other_ca, os.path.join(pki.dir, "other_ca.key"))
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def _https(port, path, ctx, method="GET", user=None, password=None, body=None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        conn.close()


def _raw(port, data: bytes, host="127.0.0.1", family=socket.AF_INET, timeout=5.0) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and b"Connection: close" not in out:
                break
        return out


# ---- TLS and basic auth ------------------------------------------------------------------

def test_tls_only_and_every_endpoint_but_the_probes_needs_basic_auth(serve, pki, tmp_path):
    server = serve(_tls_yaml(pki), tmp_path, lifecycle=True)
    ctx = _client_ctx(pki)
    # Plain HTTP is refused with an explanation, and no data.
    answer = _raw(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"HTTPS server" in answer and b"mqwatch_" not in answer
    for method, path in (("GET", "/metrics"), ("GET", "/status"), ("GET", "/"), ("POST", "/-/reload"), ("GET", "/nope")):
        status, body, headers = _https(server.port, path, ctx, method)
        assert status == 401 and headers["WWW-Authenticate"].startswith('Basic realm="mqwatch"'), (path, status)
        assert _https(server.port, path, ctx, method, "prometheus", "wrong")[0] == 401
        assert _https(server.port, path, ctx, method, "nobody", PASSWORD)[0] == 401
    assert _https(server.port, "/metrics", ctx, user="prometheus", password=PASSWORD)[0] == 200
    status, body, _ = _https(server.port, "/status", ctx, user="prometheus", password=PASSWORD)
    assert status == 200 and json.loads(body)["ready"] is True
    assert _https(server.port, "/", ctx, user="prometheus", password=PASSWORD)[0] == 200
    status, body, _ = _https(server.port, "/-/reload", ctx, "POST", "prometheus", PASSWORD)
    assert status in (200, 400)  # m.yaml does not exist: the reload is refused, but it was authorized
    assert _https(server.port, "/healthz", ctx)[:2] == (200, b"ok\n")
    assert _https(server.port, "/readyz", ctx)[0] == 200


def test_client_certificates_are_required_and_verified(serve, pki, tmp_path):
    server = serve(_tls_yaml(pki, f"  client_ca_file: {pki.ca}\n", users=False), tmp_path)
    assert _https(server.port, "/metrics", _client_ctx(pki, cert="client"))[0] == 200
    for ctx in (_client_ctx(pki), _client_ctx(pki, cert="intruder")):
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
            _https(server.port, "/metrics", ctx)


def test_min_version_refuses_older_clients(serve, pki, tmp_path):
    server = serve(_tls_yaml(pki, "  min_version: TLS13\n", users=False), tmp_path)
    assert _https(server.port, "/healthz", _client_ctx(pki))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _https(server.port, "/healthz", _client_ctx(pki, max_version=ssl.TLSVersion.TLSv1_2))


def test_web_config_errors_name_file_line_and_key(pki, tmp_path):
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {pki.server_cert}\n"
        f"  key_file: {tmp_path / 'missing.key'}\n"
        "  client_auth_type: RequireAnyClientCert\n"
        "  min_verison: TLS12\n"
        "basic_auth_users:\n"
        "  alice: plain-text-Pw9\n")
    with pytest.raises(ConfigErrors) as e:
        load_web_config(str(web))
    text = str(e.value)
    assert f"{web}:3: tls_server_config.key_file: cannot read" in text
    assert f"{web}:5: tls_server_config.min_verison: unknown key (did you mean min_version?)" in text
    assert f"{web}:4: tls_server_config.client_auth_type: RequireAnyClientCert is not supported" in text
    assert f"{web}:7: basic_auth_users.alice: expected a bcrypt hash" in text
    assert "plain-text-Pw9" not in text
    web.write_text(f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.client_key}\n"
                   "  client_auth_type: RequireAndVerifyClientCert\n")
    with pytest.raises(ConfigErrors) as e:
        load_web_config(str(web))
    assert "tls_server_config.client_ca_file: client_auth_type RequireAndVerifyClientCert needs client_ca_file" in str(e.value)
    web.write_text(f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.client_key}\n")
    with pytest.raises(ConfigErrors) as e:  # a key that does not belong to the certificate
        load_web_config(str(web))
    assert f"{web}:2: tls_server_config: cannot load the certificate, key or CA" in str(e.value)


def test_run_serves_tls_from_the_flag_and_validate_checks_agent_web_config_file(pki, tmp_path):
    web = tmp_path / "web.yml"
    web.write_text(_tls_yaml(pki))
    cfg = tmp_path / "mqwatch.yaml"
    cfg.write_text(f"agent: {{web_config_file: {tmp_path / 'nope.yml'}}}\nchecks: []\n")
    v = subprocess.run([sys.executable, "-m", "mqwatch.agent", "validate", "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    assert v.returncode == 2 and "nope.yml: cannot read web config" in v.stderr
    cfg.write_text("agent: {interval: 1s}\nchecks: []\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mqwatch.agent", "run", "-c", str(cfg), "--listen", f"127.0.0.1:{port}",
                             "--web.config.file", str(web)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ctx = _client_ctx(pki)

        def up():
            try:
                return _https(port, "/healthz", ctx)[0] == 200
            except OSError:
                return False
        wait_until(up, 30, message="TLS agent up")
        assert _https(port, "/metrics", ctx)[0] == 401
        assert _https(port, "/metrics", ctx, user="prometheus", password=PASSWORD)[0] == 200
        assert _https(port, "/-/reload", ctx, "POST", "prometheus", PASSWORD)[0] == 404  # no --web.enable-lifecycle
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "tls=True basic_auth=True lifecycle=False" in err


# ---- hardening ---------------------------------------------------------------------------

@pytest.mark.parametrize("length, code", [("-1", 400), ("abc", 400), ("1e3", 400), ("99999999999999", 413), ("70000", 413)])
def test_bad_or_huge_content_length_is_answered_at_once(serve, length, code):
    server = serve(lifecycle=True)
    t0 = time.monotonic()
    # The body is never sent: a server that waited for it would hang until the socket timeout.
    answer = _raw(server.port, f"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
    assert answer.startswith(f"HTTP/1.1 {code}".encode()) and b"Connection: close" in answer
    assert time.monotonic() - t0 < 3


def test_chunked_or_duplicated_lengths_are_refused_and_a_small_body_is_read(serve):
    server = serve(lifecycle=True)
    for headers in ("Transfer-Encoding: chunked\r\n", "Content-Length: 1\r\nContent-Length: 2\r\n"):
        answer = _raw(server.port, f"POST /-/reload HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 400"), headers
    # A small declared body is read, so the same connection serves the next request.
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.settimeout(5)
        s.sendall(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                  b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert out.startswith(b"HTTP/1.1 404") and out.count(b"HTTP/1.1 ") == 2 and out.endswith(b"ok\n")


def test_idle_connections_time_out_and_handlers_are_bounded(serve):
    server = serve(socket_timeout=1.0, max_handlers=3)
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        for s in idle:  # each holds a handler that waits for a request line
            s.settimeout(5)
        # The fourth connection is refused at once, not queued behind the silent ones.
        wait_until(lambda: _raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=0.8)
                   .startswith(b"HTTP/1.1 503"), 5, message="503 while all handlers are busy")
        # The server closes silent connections after the socket timeout (recv returns b"")...
        t0 = time.monotonic()
        assert all(s.recv(1) == b"" for s in idle)
        assert time.monotonic() - t0 < 4
    finally:
        for s in idle:
            s.close()
    # ...which frees their handlers.
    wait_until(lambda: _raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200"), 5,
               message="served again")


def test_slow_request_line_is_cut_by_the_timeout(serve):
    server = serve(socket_timeout=1.0)
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.settimeout(5)
        s.sendall(b"GET /metr")  # and never finishes the line
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 4


def test_a_request_trickled_byte_by_byte_is_cut_at_the_deadline(serve):
    """Each byte comes well within the 1 s socket timeout, the request as a whole does not."""
    server = serve(socket_timeout=1.0)
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.settimeout(5)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        t0 = time.monotonic()
        closed = False
        for _ in range(40):  # 40 x 0.25 s: 10 s of headers if the server let it
            try:
                s.sendall(b"X")
            except OSError:  # reset: the server closed the connection
                closed = True
                break
            time.sleep(0.25)
            s.setblocking(False)
            try:
                closed = s.recv(100) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed = True
            s.setblocking(True)
            s.settimeout(5)
            if closed:
                break
        assert closed and time.monotonic() - t0 < 3.5


@pytest.mark.parametrize("header, gz", [
    ("gzip", True), ("gzip;q=0", False), ("gzip; q=0.0, identity", False), ("*;q=0.5", True), ("*;q=0", False),
    ("identity;q=1, gzip;q=0.5", False), ("deflate, gzip;q=0.8", True), ("br", False), ("GZIP;Q=1", True),
    ("gzip;q=abc", False), ("", False),
])
def test_accept_encoding_q_values(header, gz):
    assert accepts_gzip(header) is gz


def test_metrics_honour_gzip_q_zero_over_the_wire(serve):
    server = serve()
    answer = _raw(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Encoding" not in head and b"mqwatch_build_info" in body or b"process_" in body
    answer = _raw(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head and gzip.decompress(body)


def test_ipv6_listen_address_validates_and_binds(serve):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    cfg = parse_config("agent: {listen: '[::1]:9325'}\nchecks: []\n", "m.yaml", {})
    assert cfg.agent.listen == "[::1]:9325"
    with pytest.raises(ConfigErrors) as e:
        parse_config("agent: {listen: '::1:9325'}\nchecks: []\n", "m.yaml", {})
    assert "agent.listen" in str(e.value) and "[::1]:9325" in str(e.value)
    from mqwatch.agent.sockio import split_listen

    host, port = split_listen("[::1]:0")
    server = serve(host=host)
    answer = _raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", host="::1",
                  family=socket.AF_INET6)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok\n")


def test_readme_web_config_example_is_valid_as_printed(pki, tmp_path):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```yaml\n# web.yml\n(.*?)```", readme, re.S).group(1)
    block = block.replace("/etc/mqwatch/tls/tls.crt", pki.server_cert).replace("/etc/mqwatch/tls/tls.key", pki.server_key)
    f = tmp_path / "web.yml"
    f.write_text(block)
    web = load_web_config(str(f))
    assert web.tls is not None and bcrypt.checkpw(b"change-me", web.users["prometheus"])


def _publish_large(agent, series: int, label_chars: int = 40) -> None:
    """An exposition of several MB: the server sends it in pieces, in one sendmsg() where it can."""
    from mqwatch.agent.metrics import GAUGE, MetricDef
    from mqwatch.agent.snapshot import SnapshotBuilder

    lag = MetricDef("t_lag_messages", GAUGE, "Lag.", ("queue",))
    b = SnapshotBuilder("kafka", "big", (lag,))
    for i in range(series):
        b.add(lag.name, i, queue=f"{i:08d}-" + "q" * label_chars)
    agent.exporter.publish(b.build(0.0, 0.1))


def test_a_large_exposition_arrives_whole_plain_gzip_and_head_on_one_connection(serve):
    server = serve()
    agent = server.httpd.RequestHandlerClass.backend.agent
    _publish_large(agent, 20_000)
    body = agent.exporter.body()
    assert len(agent.exporter.body_pieces()) > 3  # really sent as several pieces
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        assert r.status == 200 and int(r.getheader("Content-Length")) == len(body) and r.read() == body
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        r = conn.getresponse()
        assert r.getheader("Content-Encoding") == "gzip" and gzip.decompress(r.read()) == body
        conn.request("HEAD", "/metrics")
        r = conn.getresponse()
        assert int(r.getheader("Content-Length")) == len(body) and r.read() == b""
        conn.request("GET", "/healthz")  # the connection is still in step after the HEAD
        assert conn.getresponse().read() == b"ok\n"
    finally:
        conn.close()


def test_a_scraper_that_stops_reading_is_cut_at_the_timeout(serve):
    """The response must be sent within the socket timeout as a whole: a client that stops reading
    a large body cannot hold one of the few handlers."""
    server = serve(socket_timeout=1.0, max_handlers=1)
    agent = server.httpd.RequestHandlerClass.backend.agent
    wmem_max = int(open("/proc/sys/net/ipv4/tcp_wmem").read().split()[2])
    _publish_large(agent, 6_000, label_chars=1_000)  # more than the kernel's largest send buffer
    size = len(agent.exporter.body())
    assert size > wmem_max + 1_000_000
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads nothing, slowly
        s.settimeout(10)
        s.connect(("127.0.0.1", server.port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: _raw(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                                timeout=2).startswith(b"HTTP/1.1 200"), 10, message="the handler freed by the timeout")
        received = 0
        try:
            while chunk := s.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        assert received < size  # cut, not finished
