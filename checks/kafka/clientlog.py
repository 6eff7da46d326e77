"""librdkafka's own words, while the agent runs: its log lines and error callbacks.

Every librdkafka client of a check (admin, record reader, canary) gets the same ClientLog
as `logger` and `error_cb`. It does three things:
- forwards each line to the `mqwatch.librdkafka` logger as it is served (collections poll
  their clients every cycle, failed or not, so nothing piles up until shutdown);
- collapses a line that repeats (librdkafka retries a broken connection every few hundred
  ms, often alternating two texts) into its first occurrence plus one "(repeated N more
  times in 60s)" line per REPEAT_WINDOW;
- keeps the latest line that explains a failure (TLS, SASL authentication, authorization),
  so a collection that fails says why instead of "Broker transport failure".
"""

from __future__ import annotations

import logging
import re
import threading
import time

from confluent_kafka import KafkaError

REPEAT_WINDOW = 60.0
_MAX_KEYS = 64  # distinct lines tracked for collapsing
_MAX_LINE = 400

# librdkafka texts by cause. TLS first: "SSL handshake failed", "certificate verify failed",
# a plaintext client meeting a TLS listener ("connecting to a SSL listener?"), and a server that
# wants a client certificate ("certificate required", or a TLS 1.3 hang-up during ApiVersion).
_CAUSES = (
    ("tls", re.compile(r"SSL|TLS|[Cc]ertificate|ssl\.[a-z.]+")),
    ("auth", re.compile(r"SASL|[Aa]uthenticat|invalid credentials|unknown.user")),
    ("permission", re.compile(r"[Aa]uthoriz|not authorized|[Aa]ccess denied")),
)
_ERROR_CODES = {
    KafkaError._SSL: "tls",
    KafkaError._AUTHENTICATION: "auth",
    KafkaError.SASL_AUTHENTICATION_FAILED: "auth",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "permission",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "permission",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "permission",
}
_THREAD = re.compile(r"^\[thrd:[^\]]*\]: ")
_VOLATILE = re.compile(r"\(after \d+ms[^)]*\)|\(\d+ identical error\(s\) suppressed\)|\d+")


def classify(text: str) -> str | None:
    for reason, pattern in _CAUSES:
        if pattern.search(text):
            return reason
    return None


class ClientLog:
    def __init__(self, logger: logging.Logger, clock=time.monotonic):
        self.logger, self.clock = logger, clock
        self._lock = threading.Lock()
        self._seen: dict = {}  # line without numbers -> [first logged at, repeats since, level, text]
        self._cause: tuple[str, str] | None = None  # (reason, text)
        self.last_failure = ""  # the latest connection failure line, whatever its cause

    # ---- the two callbacks librdkafka gets ----------------------------------------------

    def log(self, level: int, msg: str, *args) -> None:
        """confluent-kafka calls logger.log(level, "%s [%s] %s", facility, client, text)."""
        line = (msg % args) if args else str(msg)
        self._line(level, line[:_MAX_LINE])
        if level <= logging.DEBUG:  # connection failures come at INFO ("FAIL"); debug lines name everything
            return
        text = _THREAD.sub("", str(args[-1]) if args else line)[:_MAX_LINE]  # librdkafka's own words
        if "Disconnected" in text:
            self.last_failure = text
        self._note(classify(text), text)

    def error_cb(self, err: KafkaError) -> None:
        text = err.str()[:_MAX_LINE]
        self._line(logging.ERROR if err.fatal() else logging.WARNING, text)
        self._note(_ERROR_CODES.get(err.code()) or classify(text), text)

    # ---- for the check ------------------------------------------------------------------

    def cause(self) -> tuple[str, str] | None:
        """(reason, librdkafka's text) of the latest TLS/auth/permission problem since the last clear()."""
        with self._lock:
            return self._cause

    def clear(self) -> None:
        """The cluster answered: earlier problems no longer explain anything."""
        with self._lock:
            self._cause = None
            self.last_failure = ""

    def flush(self, everything: bool = False) -> None:
        """Write "repeated N times" for lines whose window ended (all of them when the check stops)."""
        with self._lock:
            self._flush_repeats(everything)

    # ---- internals ----------------------------------------------------------------------

    def _note(self, reason: str | None, text: str) -> None:
        if reason:
            with self._lock:
                self._cause = (reason, text)

    def _line(self, level: int, text: str) -> None:
        key = _VOLATILE.sub("#", text)
        with self._lock:
            now = self.clock()
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < REPEAT_WINDOW:
                seen[1] += 1
                return
            if seen is not None or len(self._seen) >= _MAX_KEYS:
                self._flush_repeats(everything=seen is None)
            self._seen[key] = [now, 0, level, text]
        self.logger.log(level, "%s", text)

    def _flush_repeats(self, everything: bool = False) -> None:
        now = self.clock()
        for key, (first, repeats, level, text) in list(self._seen.items()):
            if everything or now - first >= REPEAT_WINDOW:
                if repeats:
                    self.logger.log(level, "%s (repeated %d more times in %.0fs)", text, repeats, now - first)
                del self._seen[key]
