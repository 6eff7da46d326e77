"""The demo's Alertmanager webhook receiver: it prints each alert once when it fires and once
when it resolves, keeps what it received (GET /alerts), and serves the runbooks the alerts link
to (GET /runbooks/NAME.md) so the links in notifications and on the status page open."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY_BYTES = 4 << 20
_RUNBOOK = re.compile(r"^/runbooks/([A-Za-z0-9_-]+\.md)$")


def describe(alert: dict) -> str:
    """One line for a console: name, severity, where, summary, runbook."""
    labels = alert.get("labels", {})
    where = "/".join(v for v in (labels.get("system"), labels.get("cluster")) if v)
    parts = [labels.get("alertname", "?"), f"[{labels.get('severity', '')}]" if labels.get("severity") else "", where,
             (alert.get("annotations") or {}).get("summary", "")]
    runbook = (alert.get("annotations") or {}).get("runbook_url")
    text = "  ".join(p for p in parts if p)
    return f"{text}  runbook: {runbook}" if runbook else text


class WebhookReceiver:
    def __init__(self, say: Callable[[str, str], None], runbooks: Path | None = None, host: str = "127.0.0.1"):
        self.say = say
        self.runbooks = runbooks
        self.received: list[dict] = []  # every alert of every notification, as Alertmanager sent it
        self._state: dict[str, str] = {}  # fingerprint -> firing | resolved
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _reply(self, code: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8"):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    return self._reply(413, b"too large\n")
                try:
                    receiver.notify(json.loads(self.rfile.read(length)))
                except (ValueError, AttributeError, TypeError):
                    return self._reply(400, b"expected an Alertmanager webhook notification\n")
                self._reply(200)

            def do_GET(self):
                if self.path == "/alerts":
                    with receiver._lock:
                        body = json.dumps(receiver.received).encode()
                    return self._reply(200, body, "application/json")
                m = _RUNBOOK.match(self.path)
                page = receiver.runbooks / m.group(1) if m and receiver.runbooks else None
                if page is None or not page.is_file():
                    return self._reply(404, b"not found\n")
                self._reply(200, page.read_bytes(), "text/markdown; charset=utf-8")

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="demo-webhook")
        self._thread.start()

    def notify(self, notification: dict) -> None:
        for alert in notification["alerts"]:
            status = alert.get("status", "firing")
            key = alert.get("fingerprint") or json.dumps(alert.get("labels", {}), sort_keys=True)
            with self._lock:
                self.received.append(alert)
                changed = self._state.get(key, "resolved") != status
                self._state[key] = status
            if changed:
                self.say("FIRING" if status == "firing" else "RESOLVED", describe(alert))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
