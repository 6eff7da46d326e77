"""One line per event, logfmt-style, with secrets redacted (agent.redact) before anything is written,
at every level and whichever library logged it."""

from __future__ import annotations

import logging
import sys
import time

from mqwatch.agent.redact import redact


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        msg = record.getMessage()
        if record.exc_info:
            msg += " exception=" + _quote(self.formatException(record.exc_info).replace("\n", " | "))
        return redact(f"ts={ts} level={record.levelname.lower()} logger={record.name} event={msg}")


def _quote(s: str) -> str:
    return '"' + s.replace('"', "'") + '"'


def destination() -> tuple[str, str | None]:
    """The level and file (None: stderr) setup_logging was last given, for a child process to log alike."""
    root = logging.getLogger()
    ours = next((h for h in root.handlers if getattr(h, "_mqwatch", False)), None)
    return logging.getLevelName(root.level).lower(), getattr(ours, "baseFilename", None)


def setup_logging(level: str = "info", file: str | None = None) -> None:
    """Log lines to stderr, or to `file` (appended) when given."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_mqwatch", False):
            root.removeHandler(h)
            h.close()
    handler = logging.FileHandler(file, encoding="utf-8") if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    handler._mqwatch = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for noisy in ("urllib3", "pulsar", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
