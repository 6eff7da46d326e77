"""Dead-letter bookkeeping shared by every system: arrivals that never go down, and reasons.

- Arrivals (`mqwatch_dlq_messages_total`) are agent.counters.Counters on every system:
  per upstream series (partition, broker), non-negative increments only, so the total never
  drops when retention or a consumer removes dead letters, when a broker counter resets, or
  when one broker cannot be read for a cycle.
- ReasonCounts counts sampled dead letters by failure reason with a bounded label set:
  the top K reasons by count, everything else as `other`.
- Reasons are exception class names by default (`reasons: class`): exception messages are
  copied from payloads and often carry personal data (an e-mail, a card holder, an order's
  address), so a message is shown only when the check says `reasons: message`.
"""

from __future__ import annotations

import re

from mqwatch.agent.redact import redact
from mqwatch.agent.schema import Choice, Field

OTHER = "other"
UNKNOWN = "unknown"
# With `reasons: class`, a reason that is a message with no exception class in front.
HIDDEN = "message_hidden"
REASON_MODES = ("class", "message")
REASONS_FIELD = Field(
    Choice(*REASON_MODES), "class",
    "class: DLQ reasons are exception class names or single-word codes, messages are counted as "
    "message_hidden (they may carry personal data); message: the failure message itself",
)
MAX_REASON_LENGTH = 120
_MAX_TRACKED_REASONS = 1000


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def normalize_reason(raw) -> str:
    """A short, printable label value from whatever a header or payload carried."""
    if raw is None:
        return UNKNOWN
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: MAX_REASON_LENGTH * 4]).decode("utf-8", errors="replace")
    text = _CONTROL.sub(" ", redact(str(raw))).strip()
    if not text:
        return UNKNOWN
    if len(text) > MAX_REASON_LENGTH:
        text = text[: MAX_REASON_LENGTH - 1] + "…"
    return text


# A class name (java.lang.IllegalStateException, Net::ReadTimeout, ZeroDivisionError) or a
# one-word code (card_declined): no spaces, no @, starts with a letter.
_CLASS = re.compile(r"[A-Za-z_$][\w.$:-]*")
# "Class: message", as Python, Java and JavaScript print an exception.
_CLASS_PREFIX = re.compile(r"([A-Za-z_$][\w.$]*(?:::[A-Za-z_$][\w$]*)*):\s")


def reason_label(raw, mode: str = "class") -> str:
    """The label for a failure reason: normalized, and in class mode reduced to its class."""
    text = normalize_reason(raw)
    if mode == "message" or text in (UNKNOWN, OTHER):
        return text
    if _CLASS.fullmatch(text) and not text.endswith((":", "-")):
        return text
    m = _CLASS_PREFIX.match(text)
    return m.group(1) if m else HIDDEN


class ReasonCounts:
    def __init__(self, top_k: int = 20, mode: str = "class"):
        self.top_k, self.mode = top_k, mode
        self._counts: dict = {}  # dlq -> {reason: count}

    def add(self, dlq, reason, n: int = 1) -> None:
        counts = self._counts.setdefault(dlq, {})
        reason = reason_label(reason, self.mode)
        if reason not in counts and len(counts) >= _MAX_TRACKED_REASONS:
            reason = OTHER
        counts[reason] = counts.get(reason, 0) + n

    def top(self, dlq) -> dict:
        counts = self._counts.get(dlq, {})
        # The overflow bucket is not a reason: it must not take one of the K places.
        ranked = sorted(((r, n) for r, n in counts.items() if r != OTHER), key=lambda kv: (-kv[1], kv[0]))
        keep = dict(ranked[: self.top_k])
        rest = counts.get(OTHER, 0) + sum(v for _, v in ranked[self.top_k:])
        if rest:
            keep[OTHER] = rest
        return keep

    def dlqs(self):
        return list(self._counts)

    def retain(self, dlqs) -> None:
        dlqs = set(dlqs)
        for k in list(self._counts):
            if k not in dlqs:
                del self._counts[k]
