"""The `kind: redis` config section."""

from mqwatch.agent import tls
from mqwatch.agent.dlq import REASONS_FIELD
from mqwatch.agent.schema import Bool, Choice, Duration, Field, Int, ListOf, Schema, Str

FRAMEWORKS = ("sidekiq", "rq", "bullmq", "celery")

_GLOB = Str(r"\S+", "expected a glob pattern such as 'jobs:*'")


def _check(section):
    problems = []
    if section.password and "@" in section.url.split("//", 1)[-1].split("/", 1)[0]:
        problems.append(("password", "the url already carries credentials; give them in one place only"))
    if tls.configured(section.tls) and not section.url.startswith("rediss://"):
        problems.append(("tls", f"tls is set but the url is {section.url.split('://', 1)[0]}://; "
                                "use rediss:// to connect with TLS"))
    return problems


CANARY_SCHEMA = Schema(
    {
        "enabled": Field(Bool(), False, "XADD a numbered entry to a stream of its own and read it back every collection"),
        "key": Field(_GLOB, "mqwatch:canary", "the canary's stream key (capped at about 1000 entries)"),
        "timeout": Field(Duration(min=0.05), 2.0, "an entry not read back within this is a timeout failure"),
        "lost_after": Field(Duration(min=1), 60.0, "an added entry not read back within this counts as lost"),
    }
)

SCHEMA = Schema(
    {
        "url": Field(
            Str(r"(rediss?|unix)://\S+", "expected redis://host:port/db, rediss:// for TLS, or unix:///path"),
            "redis://127.0.0.1:6379/0", "the server and database to watch",
        ),
        "tls": tls.field(),
        "username": Field(Str(), "", "ACL user name (Redis 6+); empty for the default user"),
        "password": Field(Str(), "", "password; prefer password_file", secret=True),
        "keys": Field(ListOf(_GLOB), ("jobs:*", "delay:*", "stream:*"),
                      "glob patterns scanned every cycle; each key's type decides what it is reported as"),
        "dlq_keys": Field(ListOf(_GLOB), ("*:dead", "*:dlq"), "keys matched here are reported as dead-letter queues"),
        "processing_suffix": Field(Str(r"\S+"), ":processing",
                                   "a LIST whose name ends in this is the in-flight list of a reliable queue"),
        "delayed_score": Field(Choice("seconds", "milliseconds", "auto"), "auto",
                               "unit of the due times stored as ZSET scores (auto: by magnitude)"),
        "frameworks": Field(ListOf(Choice(*FRAMEWORKS)), FRAMEWORKS, "job frameworks to detect by their key layouts"),
        "bullmq_prefix": Field(Str(r"[^\s*?\[\]]+", "expected a key prefix without glob characters"), "bull",
                               "BullMQ key prefix"),
        "max_keys": Field(Int(min=1), 10000, "scan budget: most keys looked at per cycle"),
        "scan_count": Field(Int(min=10, max=100000), 1000, "COUNT hint of each SCAN call"),
        "max_scan_calls": Field(Int(min=1), 20000,
                                "scan budget: most SCAN calls per cycle (each walks about scan_count keys of the "
                                "whole keyspace, matching or not)"),
        "celery_read_max": Field(Int(min=0, max=100000), 1000,
                                 "most messages of each Celery queue list read per cycle to tell eta/countdown "
                                 "tasks from ready ones and to age the oldest"),
        "dlq_sample": Field(Int(min=0, max=10000), 100, "newest dead jobs read per cycle for reasons and sources"),
        "reasons": REASONS_FIELD,
        "max_payload_bytes": Field(Int(min=0), 65536,
                                   "dead-letter payloads (RQ tracebacks: once decompressed) larger than this are not "
                                   "parsed for reasons (reason unknown)"),
        "status_window": Field(Int(min=2, max=1000), 5,
                               "collections a stream group's mqwatch_consumer_status is judged over"),
        "allowed_lag": Field(Int(min=0), 0, "stream group lag at or below which the group counts as caught up"),
        "stream_lag_max_scan": Field(Int(min=0), 100000,
                                     "most stream entries read to count a group's lag when Redis cannot report it"),
        "pending_scan": Field(Int(min=0, max=100000), 1000,
                              "oldest pending entries of each stream group read per cycle (XPENDING) for delivery "
                              "counts (poison messages); 0 turns it off"),
        "canary": Field(CANARY_SCHEMA, None),
    },
    check=_check,
)
