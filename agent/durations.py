"""Durations written the way Prometheus and Go write them: 500ms, 15s, 2m, 1h30m."""

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text) -> float:
    """Return seconds; raise ValueError with a message a user can act on."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 15s, got {text!r}")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError(f"duration must not be negative, got {text}")
        return float(text)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a duration like 500ms, 15s or 2m, got {text!r}")
    s = text.strip()
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"expected a duration like 500ms, 15s or 2m, got {text!r}")
    return total


def format_duration(seconds: float) -> str:
    if seconds < 1 and seconds != int(seconds):
        return f"{round(seconds * 1000)}ms"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
