"""The agent's process_* series and value formatting match prometheus-client's, which the agent no
longer imports (agent/process.py)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.utils import floatToGoString

from mqwatch.agent.exposition import float_to_go_string
from mqwatch.agent.process import process_exposition

# Values that move between two reads taken microseconds apart.
MOVING = ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
          "process_open_fds")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(MOVING)]


def test_process_series_are_the_collectors_line_for_line():
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    theirs = generate_latest(registry).decode()
    ours = process_exposition()
    # Same families, help texts, types and order; the same values where they cannot move.
    assert [re.sub(r" \S+$", "", line) for line in ours.splitlines()] == \
           [re.sub(r" \S+$", "", line) for line in theirs.splitlines()]
    assert _lines(ours) == _lines(theirs)
    values = dict(line.rsplit(" ", 1) for line in ours.splitlines() if not line.startswith("#"))
    expected = dict(line.rsplit(" ", 1) for line in theirs.splitlines() if not line.startswith("#"))
    for name in MOVING:
        assert abs(float(values[name]) - float(expected[name])) <= max(0.5, 0.2 * float(expected[name])), name


def test_the_agent_process_never_imports_prometheus_client():
    """3.6 MB of the agent's memory budget (benchmark 5): the running agent renders without it."""
    import subprocess
    import sys

    code = ("import sys, threading, time\n"
            "from mqwatch.agent.config import parse_config\n"
            "from mqwatch.agent import cli\n"
            "cfg = parse_config('agent: {interval: 1s}\\nchecks:\\n  - kind: kafka\\n    name: k\\n"
            "    bootstrap_servers: 127.0.0.1:1\\n    timeout: 1s\\n  - kind: redis\\n    name: r\\n"
            "    url: redis://127.0.0.1:1\\n', 'm.yaml', {})\n"
            "stop = threading.Event()\n"
            "threading.Timer(3, stop.set).start()\n"
            "cli.serve(cfg, '127.0.0.1:0', stop_event=stop)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('prometheus_client', 'http.server', 'wsgiref'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_values_are_formatted_as_prometheus_client_does(value):
    assert float_to_go_string(value) == floatToGoString(value)
