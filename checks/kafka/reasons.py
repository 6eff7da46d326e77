"""The failure reason of one dead letter, from its headers or its JSON payload.

Header names, in the order they are tried (after the configured ones):
- Spring Kafka's DeadLetterPublishingRecoverer: `kafka_dlt-exception-cause-fqcn` (the real
  cause; the plain fqcn is usually ListenerExecutionFailedException wrapping it), then
  `kafka_dlt-exception-fqcn`.
- Kafka Connect's errors.deadletterqueue.context.headers.enable:
  `__connect.errors.exception.class.name`.
- The exception messages of both, only when no class name is present (messages often
  carry record ids and personal data: with the default `reasons: class` they are reduced to
  their leading class name or `message_hidden` by agent.dlq.reason_label).

A header value that is not text (binary, invalid UTF-8, control bytes) is skipped with a
problem noted, so one odd producer can't break collection or put garbage in a label.
"""

from __future__ import annotations

import codecs
import json

from mqwatch.agent.dlq import UNKNOWN, normalize_reason

SPRING_CAUSE_FQCN = "kafka_dlt-exception-cause-fqcn"
SPRING_FQCN = "kafka_dlt-exception-fqcn"
SPRING_MESSAGE = "kafka_dlt-exception-message"
SPRING_ORIGINAL_TOPIC = "kafka_dlt-original-topic"
CONNECT_CLASS = "__connect.errors.exception.class.name"
CONNECT_MESSAGE = "__connect.errors.exception.message"
CONNECT_TOPIC = "__connect.errors.topic"

BUILTIN_REASON_HEADERS = (SPRING_CAUSE_FQCN, SPRING_FQCN, CONNECT_CLASS, SPRING_MESSAGE, CONNECT_MESSAGE)
ORIGINAL_TOPIC_HEADERS = (SPRING_ORIGINAL_TOPIC, CONNECT_TOPIC)

_HEADER_PREFIX_BYTES = 1024  # a reason label is at most 120 characters; never decode a megabyte


def header_text(raw) -> str | None:
    """The header's text, or None when it is not text. Raises ValueError with why."""
    if raw is None:
        return None
    if isinstance(raw, str):
        data = raw.encode("utf-8", "replace")
    else:
        data = bytes(raw[:_HEADER_PREFIX_BYTES])
    # An incremental decoder tolerates a multi-byte character cut off by the prefix.
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        raise ValueError(f"is not UTF-8 text ({len(raw)} bytes)") from None
    if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in text):
        raise ValueError(f"contains binary data ({len(raw)} bytes)")
    return text


def reason_of(headers, payload, extra_headers=(), json_field: str = "", max_payload_bytes: int = 65536):
    """(reason label, [problems]) for one dead letter."""
    problems: list[str] = []
    by_name: dict = {}
    for name, value in headers or ():
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        by_name[name] = value  # Kafka's Headers.lastHeader() semantics: the last one wins
    for name in tuple(extra_headers) + BUILTIN_REASON_HEADERS:
        if name not in by_name:
            continue
        try:
            text = header_text(by_name[name])
        except ValueError as e:
            problems.append(f"header {name!r} {e}")
            continue
        if text and text.strip():
            return normalize_reason(text), problems
    if json_field:
        reason, problem = _json_reason(payload, json_field, max_payload_bytes)
        if problem:
            problems.append(problem)
        if reason is not None:
            return reason, problems
    return UNKNOWN, problems


def original_topic(headers) -> str | None:
    """The topic a dead letter came from, per Spring's or Kafka Connect's header."""
    found = None
    for name, value in headers or ():
        if name in ORIGINAL_TOPIC_HEADERS:
            try:
                found = header_text(value) or found
            except ValueError:
                continue
    return found


def _json_reason(payload, path: str, max_bytes: int):
    if payload is None:
        return None, None
    if len(payload) > max_bytes:
        return None, None  # documented: large payloads are not parsed
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None, "payload is not JSON"
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None, None
    if isinstance(doc, (dict, list)) or doc is None:
        return None, None
    return normalize_reason(doc), None
