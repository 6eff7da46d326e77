"""HTTP endpoints: /metrics, /healthz, /readyz, /status, / and POST /-/reload."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent import __version__
from agent.statuspage import render_status_page

log = logging.getLogger("mqwatch.http")

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"


def status_document(agent) -> dict:
    now = time.time()
    checks = []
    for st in sorted(agent.exporter.states(), key=lambda s: s.key):
        snap = st.snapshot
        checks.append({
            "kind": st.kind,
            "name": st.name,
            "up": st.up,
            "interval_seconds": st.interval,
            "collections": st.completed,
            "last_success": st.last_success,
            "last_success_age_seconds": None if st.last_success is None else round(now - st.last_success, 3),
            "last_duration_seconds": st.last_duration,
            "last_error": st.last_error,
            "series": snap.series if snap else 0,
            "errors_total": dict(st.errors_total),
        })
    return {"version": __version__, "ready": agent.ready(), "time": now, "checks": checks}


class _Handler(BaseHTTPRequestHandler):
    agent = None  # set per server class
    server_version = f"mqwatch/{__version__}"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the body of a small
    # (e.g. gzip) response waits for the client's delayed ACK, 40 ms per scrape on Linux.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # routed to our logger at debug, not stderr
        if log.isEnabledFor(logging.DEBUG):
            log.debug("http_request client=%s request=%s", self.client_address[0], fmt % args)

    def _send(self, code: int, body: bytes, ctype: str, headers: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        agent = self.agent
        if path == "/metrics":
            gz = "gzip" in (self.headers.get("Accept-Encoding") or "")
            body = agent.exporter.body(want_gzip=gz)
            self._send(200, body, CONTENT_TYPE_LATEST, {"Content-Encoding": "gzip"} if gz else None)
        elif path == "/healthz":
            self._send(200, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            ready = agent.ready()
            body = b"ready\n" if ready else b"not ready: a check has not completed yet\n"
            self._send(200 if ready else 503, body, "text/plain; charset=utf-8")
        elif path == "/status":
            body = json.dumps(status_document(agent), indent=2).encode()
            self._send(200, body, "application/json")
        elif path == "/":
            self._send(200, render_status_page(agent).encode(), "text/html; charset=utf-8")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        if path == "/-/reload":
            ok, message = self.agent.reload()
            self._send(200 if ok else 400, (message + "\n").encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")


class HTTPServer:
    def __init__(self, agent, host: str, port: int):
        handler = type("Handler", (_Handler,), {"agent": agent})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)
