"""The `kind: pulsar` config section."""

from mqwatch.agent import tls
from mqwatch.agent.dlq import REASONS_FIELD
from mqwatch.agent.schema import Bool, Duration, Field, Filter, Int, ListOf, Schema, Str

_HTTP_URL = Str(r"https?://[^\s/]+(/\S*)?", "expected an http(s) URL, for example http://broker-1:8080", noun="a URL")

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
    urls = list(section.metrics_url) + [section.admin_url, section.service_url]
    secure = [u for u in urls if u.startswith(("https://", "pulsar+ssl://"))]
    if tls.configured(section.tls) and not secure:
        problems.append(("tls", "tls is set but no url uses it: use https:// or pulsar+ssl://"))
    if section.service_url.startswith("pulsar+ssl://") and section.tls.key_password:
        problems.append((("tls", "key_password"), "pulsar-client cannot load an encrypted key for pulsar+ssl://; "
                                                  "give it an unencrypted key_file"))
    return problems


def _check_auth(section):
    o = section.oauth2
    given = [k for k in ("issuer_url", "client_id", "client_secret") if o[k]]
    problems = []
    if given and len(given) < 3:
        missing = [k for k in ("issuer_url", "client_id", "client_secret") if not o[k]]
        problems.append((("oauth2", missing[0]), "OAuth2 client credentials need issuer_url, client_id and client_secret"))
    if given and section.token:
        problems.append(("token", "give either token or oauth2, not both"))
    return problems


OAUTH2_SCHEMA = Schema({
    "issuer_url": Field(Str(r"(https?://\S+)?", "expected the issuer's https:// URL"), "",
                        "OAuth2 issuer; its /.well-known/openid-configuration names the token endpoint"),
    "client_id": Field(Str(), "", "client credentials id"),
    "client_secret": Field(Str(), "", "client credentials secret; prefer client_secret_file", secret=True),
    "audience": Field(Str(), "", "the Pulsar cluster's OAuth2 audience"),
    "scope": Field(Str(), "", "scope of the access request, if the issuer wants one"),
})


SCHEMA = Schema(
    {
        "metrics_url": Field(
            ListOf(_HTTP_URL, split_commas=True, expected="a URL or a list of URLs"), (),
            "broker /metrics endpoints to scrape, a list or a comma-separated string",
        ),
        "admin_url": Field(Str(r"(https?://[^\s/?#]+(/[^\s?#]*)?)?", "expected http(s)://host:port[/path-prefix]"), "",
                           "the admin REST API (exact lag seconds, blocked subscriptions, broker health); a path "
                           "prefix (https://gateway/pulsar) is kept in front of /admin/v2"),
        "service_url": Field(Str(r"(pulsar(\+ssl)?://\S+)?", "expected pulsar://host:6650"), "",
                             "binary protocol URL for the canary and DLQ sampling"),
        "tls": tls.field(),
        "auth": Field(Schema({
            "token": Field(Str(), "", "JWT sent as a bearer token", secret=True),
            "oauth2": Field(OAUTH2_SCHEMA, None),
            "allowed_hosts": Field(
                ListOf(Str(r"[^\s/:]+(:\d+)?", "expected host or host:port"), split_commas=True), (),
                "more hosts (host:port) that may receive the token besides those of metrics_url and admin_url, "
                "for example brokers the admin API lists for health checks",
            ),
        }, check=_check_auth), None),
        "topics": Filter(default_include=(".*",), default_exclude=DEFAULT_TOPIC_EXCLUDES),
        "subscriptions": Filter(default_include=(".*",), default_exclude=DEFAULT_SUBSCRIPTION_EXCLUDES),
        "request_timeout": Field(Duration(min=0.05), 5.0, "timeout of each HTTP request (capped below the check timeout)"),
        "max_metrics_bytes": Field(Int(min=1024), 128 * 1024 * 1024,
                                   "largest broker /metrics reply read (about 73 MB per 10,000 topics); "
                                   "a larger one fails with reason too_large"),
        "max_admin_bytes": Field(Int(min=1024), 16 * 1024 * 1024,
                                 "largest admin API reply read; a larger one fails with reason too_large"),
        "max_concurrency": Field(Int(min=1, max=64), 8, "admin API requests in flight at once"),
        "status_window": Field(Int(min=2, max=1000), 5,
                               "collections mqwatch_consumer_status is judged over; a subscription must acknowledge "
                               "at least once per status_window - 1 collections or it looks stalled"),
        "allowed_lag": Field(Int(min=0), 0, "backlog in messages at or below which a partition counts as caught up"),
        "retention_refresh": Field(Duration(min=0), 300.0,
                                   "admin API: how often namespaces' message TTL and backlog quotas are read for "
                                   "retention headroom; 0 turns it off"),
        "canary": Field(
            Schema({
                "enabled": Field(Bool(), False),
                "topic": Field(Str(r"(non-)?persistent://[^/\s]+/[^/\s]+/[^/\s]+|[^/\s:]+", "a topic name"),
                               "persistent://public/default/mqwatch-canary"),
                "timeout": Field(Duration(min=0.05), 5.0, "how long to wait for the canary message to come back"),
                "lost_after": Field(Duration(min=1), 60.0,
                                    "a stored canary message not consumed back within this counts as lost"),
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
