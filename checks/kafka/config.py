"""The `kind: kafka` config section."""

from agent.schema import Choice, Field, Filter, ListOf, ScalarMap, Schema, Str

_RESERVED_CLIENT_KEYS = ("bootstrap.servers", "group.id", "enable.auto.commit", "logger")


def _check(section):
    problems = []
    for key in section.client:
        if key in _RESERVED_CLIENT_KEYS:
            problems.append(("client", f"{key!r} is set by mqwatch itself; remove it from client"))
    return problems


SCHEMA = Schema(
    {
        "bootstrap_servers": Field(
            ListOf(Str(r"[^\s,]+:\d{1,5}", "expected host:port"), split_commas=True, min_items=1),
            doc="brokers to bootstrap from, a list or a comma-separated string of host:port",
        ),
        "groups": Filter(default_include=(".*",), default_exclude=()),
        "topics": Filter(default_include=(".*",), default_exclude=("^__",)),
        "granularity": Field(Choice("topic", "partition"), "topic", "partition adds per-partition lag series"),
        "client": Field(ScalarMap(), {}, "librdkafka properties passed through (security.protocol, sasl.*, ssl.*)"),
    },
    check=_check,
)
