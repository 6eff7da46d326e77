"""Helpers for the end-to-end alerting tests: a webhook receiver standing in for a pager, an
mqwatch agent process, and Alertmanager's example config pointed at the receiver."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from mqwatch.agent.embedded import free_port, start_alertmanager, start_prometheus, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_EXAMPLE = ROOT / "alerts" / "alertmanager.example.yml"


class WebhookReceiver:
    """Collects Alertmanager webhook notifications, by receiver (the URL path)."""

    def __init__(self):
        self.notifications: list[tuple[str, dict, float]] = []  # (receiver, body, unix time received)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.notifications.append((self.path.strip("/"), json.loads(body), time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, receiver: str | None = None, status: str = "firing") -> list[dict]:
        return [a for _, a in self.timed_alerts(receiver, status)]

    def timed_alerts(self, receiver: str | None = None, status: str = "firing") -> list[tuple[float, dict]]:
        """(unix time the notification arrived, alert) for each alert of each notification."""
        with self._lock:
            return [(t, a) for path, n, t in self.notifications if receiver in (None, path)
                    for a in n["alerts"] if a["status"] == status]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def alertmanager_config_for_tests(webhook_url: str) -> dict:
    """The shipped example (routes, grouping, inhibitions) with every receiver replaced by the
    test's webhook at /<receiver name>, and waits shortened from minutes to a second."""
    config = yaml.safe_load(ALERTMANAGER_EXAMPLE.read_text())
    config["receivers"] = [{"name": r["name"], "webhook_configs": [{"url": f"{webhook_url}/{r['name']}",
                                                                    "send_resolved": True}]}
                           for r in config["receivers"]]
    config["route"].update({"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"})
    return config


def prometheus_available() -> bool:
    return all(shutil.which(n) or os.path.exists(f"/usr/bin/{n}") for n in ("prometheus", "prometheus-alertmanager"))


def start_alertmanager_for(webhook_url: str):
    return start_alertmanager(yaml.safe_dump(alertmanager_config_for_tests(webhook_url), sort_keys=False))


def start_prometheus_for(targets: list[str], rules_text: str | None = None, alertmanager: str | None = None,
                         interval: str = "1s"):
    """Prometheus scraping mqwatch agents as job `mqwatch` every `interval`, evaluating the rules."""
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "scrape_configs": [{"job_name": "mqwatch", "static_configs": [{"targets": list(targets)}]}],
    }
    if rules_text:
        config["rule_files"] = ["mqwatch.rules.yml"]
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return start_prometheus(yaml.safe_dump(config, sort_keys=False), {"mqwatch.rules.yml": rules_text} if rules_text else None)


class AgentProcess:
    """`mqwatch run` as a child process on a free loopback port."""

    def __init__(self, config_path: Path, env: dict | None = None):
        self.port = free_port()
        self.log_path = config_path.with_suffix(".log")
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "mqwatch.agent", "run", "-c", str(config_path), "--listen",
                                      f"127.0.0.1:{self.port}"], cwd=ROOT, env={**os.environ, **(env or {})},
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        wait_for_port(self.port, 30, self.proc)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def post_json(url: str, doc) -> None:
    req = urllib.request.Request(url, json.dumps(doc).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read()


def prometheus_query(prometheus_url: str, expr: str) -> list | None:
    """The instant-query result, or None while Prometheus is still starting (503)."""
    import urllib.error
    import urllib.parse

    try:
        doc = get_json(f"{prometheus_url}/api/v1/query?query={urllib.parse.quote(expr)}")
    except urllib.error.HTTPError as e:
        if e.code == 503:
            return None
        raise AssertionError(f"{expr}: HTTP {e.code}: {e.read()[:500]!r}") from None
    assert doc["status"] == "success", (expr, doc)
    return doc["data"]["result"]
