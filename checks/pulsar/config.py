"""The `kind: pulsar` config section."""

from agent.dlq import REASONS_FIELD
from agent.schema import Bool, Duration, Field, Filter, Int, ListOf, Schema, Str

_HTTP_URL = Str(r"https?://[^\s/]+(/\S*)?", "expected an http(s) URL, for example http://broker-1:8080")

# Pulsar's own bookkeeping topics are noise on a lag dashboard.
DEFAULT_TOPIC_EXCLUDES = (r"^(non-)?persistent://pulsar/system/", r"/__[^/]*$")
# Readers (including mqwatch's own DLQ sampler) hold non-durable `reader-<hex>` subscriptions.
DEFAULT_SUBSCRIPTION_EXCLUDES = (r"^reader-[0-9a-f]{10}$",)


def _check(section):
    problems = []
    if not section.metrics_url and not section.admin_url:
        problems.append(("", "give metrics_url, admin_url or both: mqwatch needs at least one source"))
    if section.canary.enabled and not section.service_url:
        problems.append(("canary.enabled", "the canary needs service_url (pulsar://host:6650)"))
    if section.dlq_sampling.enabled and not section.service_url:
        problems.append(("dlq_sampling.enabled", "DLQ sampling reads dead letters over service_url (pulsar://host:6650)"))
    return problems


SCHEMA = Schema(
    {
        "metrics_url": Field(
            ListOf(_HTTP_URL, split_commas=True), (),
            "broker /metrics endpoints to scrape, a list or a comma-separated string",
        ),
        "admin_url": Field(Str(r"(https?://[^\s/]+/?)?", "expected http(s)://host:port"), "",
                           "the admin REST API (exact lag seconds, blocked subscriptions, broker health)"),
        "service_url": Field(Str(r"(pulsar(\+ssl)?://\S+)?", "expected pulsar://host:6650"), "",
                             "binary protocol URL for the canary and DLQ sampling"),
        "auth": Field(Schema({
            "token": Field(Str(), "", "JWT sent as a bearer token", secret=True),
            "allowed_hosts": Field(
                ListOf(Str(r"[^\s/:]+(:\d+)?", "expected host or host:port"), split_commas=True), (),
                "more hosts (host:port) that may receive the token besides those of metrics_url and admin_url, "
                "for example brokers the admin API lists for health checks",
            ),
        }), None),
        "topics": Filter(default_include=(".*",), default_exclude=DEFAULT_TOPIC_EXCLUDES),
        "subscriptions": Filter(default_include=(".*",), default_exclude=DEFAULT_SUBSCRIPTION_EXCLUDES),
        "request_timeout": Field(Duration(min=0.05), 5.0, "timeout of each HTTP request (capped below the check timeout)"),
        "max_metrics_bytes": Field(Int(min=1024), 128 * 1024 * 1024,
                                   "largest broker /metrics reply read (about 73 MB per 10,000 topics); "
                                   "a larger one fails with reason too_large"),
        "max_admin_bytes": Field(Int(min=1024), 16 * 1024 * 1024,
                                 "largest admin API reply read; a larger one fails with reason too_large"),
        "max_concurrency": Field(Int(min=1, max=64), 8, "admin API requests in flight at once"),
        "status_window": Field(Int(min=2, max=1000), 10, "observations mqwatch_consumer_status is judged over"),
        "canary": Field(
            Schema({
                "enabled": Field(Bool(), False),
                "topic": Field(Str(r"(non-)?persistent://[^/\s]+/[^/\s]+/[^/\s]+|[^/\s:]+", "a topic name"),
                               "persistent://public/default/mqwatch-canary"),
                "timeout": Field(Duration(min=0.05), 5.0, "how long to wait for the canary message to come back"),
            }),
            None,
        ),
        "reasons": REASONS_FIELD,
        "dlq_sampling": Field(
            Schema({
                "enabled": Field(Bool(), False),
                "reason_property": Field(Str(), "", "message property holding the failure reason"),
                "max_messages": Field(Int(min=1, max=10000), 100, "dead letters read per DLQ per collection"),
            }),
            None,
        ),
    },
    check=_check,
)
