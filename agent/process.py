"""The agent's process_* series, as prometheus-client's ProcessCollector exports them.

Written here rather than taken from prometheus-client: importing any part of that package
imports all of it (its exposition module brings wsgiref, http.server and the email package),
3.6 MB of the agent's memory for six numbers read from /proc (benchmark 5). The names, help
texts, types and values are the collector's; tests/test_process.py holds them to it.
"""

from __future__ import annotations

import os

from mqwatch.agent.exposition import format_value, header

_PROC = "/proc"


def _clock_ticks() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100.0


def _boot_time() -> float:
    try:
        with open(os.path.join(_PROC, "stat"), "rb") as stat:
            for line in stat:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


_TICKS = _clock_ticks()
_BOOT_TIME = _boot_time()  # 0 where there is no /proc: no process series, as with the collector
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _family(name: str, typ: str, help: str, value: float) -> str:
    return f"{header(name, typ, help)}{name} {format_value(float(value))}\n"


def process_exposition() -> str:
    """This process' series in the text format; "" where /proc cannot be read."""
    if not _BOOT_TIME:
        return ""
    out = []
    try:
        with open(os.path.join(_PROC, "self", "stat"), "rb") as f:
            parts = f.read().split(b")")[-1].split()
        out += [
            _family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", float(parts[20])),
            _family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                    float(parts[21]) * _PAGE_SIZE),
            _family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                    float(parts[19]) / _TICKS + _BOOT_TIME),
            _family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                    float(parts[11]) / _TICKS + float(parts[12]) / _TICKS),
        ]
    except (OSError, IndexError, ValueError):
        pass
    try:
        max_fds = None
        with open(os.path.join(_PROC, "self", "limits"), "rb") as limits:
            for line in limits:
                if line.startswith(b"Max open file"):
                    max_fds = float(line.split()[3])
                    break
        open_fds = len(os.listdir(os.path.join(_PROC, "self", "fd")))
        out.append(_family("process_open_fds", "gauge", "Number of open file descriptors.", open_fds))
        if max_fds is not None:
            out.append(_family("process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds))
    except (OSError, IndexError, ValueError):
        pass
    return "".join(out)
