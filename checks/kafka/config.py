"""The `kind: kafka` config section."""

import re

from mqwatch.agent import tls
from mqwatch.agent.dlq import REASONS_FIELD
from mqwatch.agent.schema import (
    did_you_mean, Bool, Choice, Duration, Field, Filter, Int, Invalid, ListOf, Regex, ScalarMap, Schema, Str,
)
from mqwatch.checks.kafka import properties

_RESERVED_CLIENT_KEYS = ("bootstrap.servers", "group.id", "enable.auto.commit", "logger")

# Dead-letter topic names that capture their source topic. Case-insensitive so `orders.DLT`
# (Spring's DeadLetterPublishingRecoverer), `orders-dlt` (Spring retry topics), `orders.DLQ`,
# `orders-dlq`, `orders_dlq`, `orders.deadletter` and `dlq-orders` are all found.
DEFAULT_DLQ_PATTERNS = (
    r"(?i)^(?P<source>.+)[._-](?:dlt|dlq)$",
    r"(?i)^(?P<source>.+)[._-]dead-?letter(?:s|-queue)?$",
    r"(?i)^(?:dlq|dlt)[._-](?P<source>.+)$",
)
# Retry topics (Spring's non-blocking retries: `orders-retry`, `orders-retry-0`, `orders-retry-5000`).
DEFAULT_RETRY_PATTERNS = (r"(?i)^(?P<source>.+)-retry(?:-\d+)?$",)


class SourceRegex(Regex):
    """A regex with a named group `source` that captures the original topic from a DLQ's name."""

    name = "regular expression with a (?P<source>...) group"

    def convert(self, value, ctx, path):
        pattern = super().convert(value, ctx, path)
        if "source" not in pattern.groupindex:
            raise Invalid(f"{value!r} has no named group (?P<source>...) to capture the source topic")
        return pattern


_SECRET_KEY = re.compile(r"(?i)password|secret|jaas")


class ClientProperties(ScalarMap):
    """`client:`: librdkafka properties, each checked by the librdkafka the agent runs with."""

    def convert(self, value, ctx, path):
        out = super().convert(value, ctx, path)
        known = properties.known_properties()
        for key, v in out.items():
            if key in _RESERVED_CLIENT_KEYS:
                continue  # reported by _check
            problem = properties.problem(key, v)
            if problem and known and key not in known:
                ctx.error(path + (key,), f"unknown librdkafka property{did_you_mean(key, known)}")
            elif problem:  # librdkafka's message quotes the value: not for a secret
                ctx.error(path + (key,), "invalid value" if _SECRET_KEY.search(key) else problem)
        return out


def _check(section):
    problems = []
    for key in section.client:
        if key in _RESERVED_CLIENT_KEYS:
            problems.append(("client", f"{key!r} is set by mqwatch itself; remove it from client"))
    protocol = str(section.client.get("security.protocol", "")).lower()
    if tls.configured(section.tls) and protocol in ("plaintext", "sasl_plaintext"):
        problems.append((("client", "security.protocol"), f"tls is set but security.protocol is {protocol}; "
                                                     "drop it (mqwatch picks ssl or sasl_ssl) or use ssl/sasl_ssl"))
    if section.tls.server_name:
        problems.append((("tls", "server_name"), "librdkafka verifies the broker's advertised host name and cannot "
                                            "be given another; advertise the name the certificate carries"))
    return problems


DLQ_SCHEMA = Schema(
    {
        "enabled": Field(Bool(), True, "report dead-letter and retry topics"),
        "patterns": Field(
            ListOf(SourceRegex()), tuple(re.compile(p) for p in DEFAULT_DLQ_PATTERNS),
            "regexes on topic names; a match is a DLQ and its (?P<source>...) group names the source topic",
        ),
        "retry_patterns": Field(
            ListOf(SourceRegex()), tuple(re.compile(p) for p in DEFAULT_RETRY_PATTERNS),
            "regexes on topic names; a match is a retry topic (checked before the DLQ patterns)",
        ),
        "topics": Field(
            ScalarMap(), {},
            "explicit DLQ topic -> source topic (Kafka Connect's errors.deadletterqueue.topic.name); wins over "
            "patterns; an empty source is read from the dead letters' original-topic headers",
        ),
    }
)

class ReasonsSection(Schema):
    """`reasons:` is a mapping; `reasons: class` / `reasons: message` is short for `{mode: ...}`,
    the spelling the Redis and Pulsar checks use."""

    def convert(self, value, ctx, path):
        if isinstance(value, str):
            value = {"mode": value}
        return super().convert(value, ctx, path)


REASONS_SCHEMA = ReasonsSection(
    {
        "mode": REASONS_FIELD,
        "enabled": Field(Bool(), True, "sample new dead letters each cycle and count them by failure reason"),
        "sample": Field(Int(min=1, max=10_000), 100, "at most this many new dead letters are read per cycle, newest first"),
        "headers": Field(ListOf(Str()), (), "header names tried first for the reason, before Spring's and Kafka Connect's"),
        "json_field": Field(Str(r"([^.\s]+(\.[^.\s]+)*)?", "expected a dotted path like error.reason"), "",
                            "dotted path of a reason field in a JSON payload, used when no header has one"),
        "top": Field(Int(min=1, max=1000), 20, "reasons exported per DLQ; the rest are summed as `other`"),
        "max_payload_bytes": Field(Int(min=0), 65536, "payloads larger than this are not parsed for json_field"),
    }
)

CANARY_SCHEMA = Schema(
    {
        "enabled": Field(Bool(), False, "produce a timestamped message and consume it back, on its own schedule"),
        "topic": Field(Str(r"[A-Za-z0-9._-]{1,249}", "expected a Kafka topic name"), "mqwatch-canary"),
        "create_topic": Field(Bool(), True, "create the canary topic when it does not exist"),
        "partitions": Field(Int(min=1), 1, "partitions of a created canary topic"),
        "replication_factor": Field(Int(min=-1), -1, "replication of a created canary topic; -1 is the broker default"),
        "interval": Field(Duration(min=0.1), 10.0, "time between canary messages"),
        "timeout": Field(Duration(min=0.1), 5.0, "a message not consumed back within this counts as a timeout failure"),
        "lost_after": Field(Duration(min=1), 60.0,
                            "an acknowledged message not consumed back within this counts as lost"),
    }
)

SCHEMA = Schema(
    {
        "bootstrap_servers": Field(
            ListOf(Str(r"[^\s,]+:\d{1,5}", "expected host:port"), split_commas=True, min_items=1,
                   expected="host:port or a list of them (or a comma-separated string)"),
            doc="brokers to bootstrap from, a list or a comma-separated string of host:port",
        ),
        "groups": Filter(default_include=(".*",), default_exclude=()),
        "topics": Filter(default_include=(".*",), default_exclude=("^__",)),
        "granularity": Field(Choice("topic", "partition"), "topic", "partition adds per-partition lag series"),
        "tls": tls.field(),
        "client": Field(ClientProperties(), {}, "librdkafka properties passed through (security.protocol, sasl.*, ssl.*); "
                                         "checked against librdkafka's own property table; they override tls"),
        "time_lag": Field(
            Choice("estimate", "exact", "off"), "estimate",
            "lag in seconds: estimate from end-offset history (exact while the history is too short), "
            "exact by reading the record at the committed offset, or off",
        ),
        "time_lag_fetches": Field(Int(min=1, max=100_000), 500,
                                  "at most this many partitions are read per cycle to date committed offsets"),
        "fetch_timeout": Field(Duration(min=0.05), 2.0,
                               "how long one cycle waits for each batch of record reads (time lag, dead letters)"),
        "status_window": Field(Int(min=2, max=1000), 5,
                               "collections the consumer status is evaluated over; a consumer must commit at least "
                               "once per status_window - 1 collections or it looks stalled"),
        "allowed_lag": Field(Int(min=0), 0, "lag in messages at or below which a partition counts as caught up"),
        "retention_refresh": Field(Duration(min=0), 300.0,
                                   "how often topics' retention.ms is read (DescribeConfigs) for retention "
                                   "headroom; 0 turns it off"),
        "dlq": Field(DLQ_SCHEMA, None),
        "reasons": Field(REASONS_SCHEMA, None),
        "canary": Field(CANARY_SCHEMA, None),
    },
    check=_check,
)
