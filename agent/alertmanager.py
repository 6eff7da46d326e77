"""The alerts firing now, read from Alertmanager's API (`agent.alertmanager_url`), for the status page.

Alertmanager answers with every active alert; the status page asks at most once per
CACHE_SECONDS whatever the number of viewers, with a short timeout and a capped body, and
shows the error instead of alerts when Alertmanager cannot answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

TIMEOUT_SECONDS = 2.0
MAX_BODY_BYTES = 2 << 20
CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class FiringAlert:
    name: str
    severity: str
    labels: dict
    summary: str
    runbook_url: str
    starts_at: str


@dataclass(frozen=True)
class AlertsView:
    alerts: tuple[FiringAlert, ...] = ()
    error: str = ""  # Alertmanager could not be read: why


def parse_alerts(doc) -> tuple[FiringAlert, ...]:
    """GET /api/v2/alerts's answer (a list of gettableAlert), keeping active, unsilenced,
    uninhibited ones; most severe first, then by name."""
    if not isinstance(doc, list):
        raise ValueError("expected a JSON list of alerts")
    out = []
    for a in doc:
        if not isinstance(a, dict) or (a.get("status") or {}).get("state", "active") != "active":
            continue
        labels = {str(k): str(v) for k, v in (a.get("labels") or {}).items()}
        ann = a.get("annotations") or {}
        out.append(FiringAlert(labels.get("alertname", "?"), labels.get("severity", ""), labels,
                               str(ann.get("summary", "")), str(ann.get("runbook_url", "")), str(a.get("startsAt", ""))))
    rank = {"critical": 0, "warning": 1}
    return tuple(sorted(out, key=lambda f: (rank.get(f.severity, 2), f.name, sorted(f.labels.items()))))


def fetch(base_url: str) -> AlertsView:
    # Imported here, not at the top: requests with urllib3, idna and charset_normalizer is
    # 5.8 MB of RSS, and an agent without agent.alertmanager_url never calls this.
    import requests

    url = base_url.rstrip("/") + "/api/v2/alerts"
    try:
        with requests.get(url, params={"active": "true", "silenced": "false", "inhibited": "false"},
                          timeout=TIMEOUT_SECONDS, stream=True) as r:
            r.raise_for_status()
            body = r.raw.read(MAX_BODY_BYTES + 1, decode_content=True)
        if len(body) > MAX_BODY_BYTES:
            return AlertsView(error=f"{url}: answer larger than {MAX_BODY_BYTES} bytes")
        import json

        return AlertsView(parse_alerts(json.loads(body)))
    except (requests.RequestException, ValueError) as e:
        return AlertsView(error=f"{url}: {type(e).__name__}: {e}")


class AlertSource:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._view = AlertsView()

    def view(self) -> AlertsView:
        with self._lock:
            if time.monotonic() - self._at >= CACHE_SECONDS:
                self._view = fetch(self.base_url)
                self._at = time.monotonic()
            return self._view


_sources: dict[str, AlertSource] = {}
_sources_lock = threading.Lock()


def source(base_url: str) -> AlertSource:
    """One cached source per URL, shared by every request (and kept across reloads)."""
    with _sources_lock:
        if base_url not in _sources:
            _sources[base_url] = AlertSource(base_url)
        return _sources[base_url]
