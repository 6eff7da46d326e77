"""What the HTTP server asks of the agent, apart from the socket work: the /metrics body, readiness,
and the answers of /status, / and /-/reload.

The server (agent.server) runs in the serving child (agent.front) and asks the agent across a
socket; tests and the benchmark's in-process server ask an AgentBackend directly. Either way
the answers are built here, in the agent's process, and every text leaves through the redactor.
"""

from __future__ import annotations

import json
import time

from mqwatch.agent import __version__
from mqwatch.agent.httpwire import TEXT, Reply
from mqwatch.agent.redact import redact

JSON = "application/json"
HTML = "text/html; charset=utf-8"


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
            "last_error": redact(st.last_error) if st.last_error else st.last_error,
            "series": snap.series if snap else 0,
            "errors_total": dict(st.errors_total),
        })
    return {"version": __version__, "ready": agent.ready(), "time": now, "checks": checks}


class AgentBackend:
    def __init__(self, agent):
        self.agent = agent

    @property
    def exporter(self):
        return self.agent.exporter

    def metrics(self, want_gzip: bool) -> tuple[bytes, ...]:
        return self.agent.exporter.body_pieces(want_gzip=want_gzip)

    def ready(self) -> bool:
        return self.agent.ready()

    def alive(self) -> bool:
        return True  # asked in the agent's process: an answer is proof enough

    def answer(self, call: str) -> Reply:
        if call == "status":
            return _text(200, json.dumps(status_document(self.agent), indent=2), JSON)
        if call == "page":
            from mqwatch.agent.statuspage import render_status_page  # only the status page needs it

            return _text(200, render_status_page(self.agent), HTML)
        if call == "reload":
            ok, message = self.agent.reload()
            return _text(200 if ok else 400, message + "\n", TEXT)
        return Reply(404, TEXT, b"not found\n")


def _text(code: int, text: str, content_type: str) -> Reply:
    # Every text the server sends passes the redactor, whatever built it.
    return Reply(code, content_type, redact(text).encode())
