"""How long Pulsar keeps an unconsumed message, per namespace, from the admin API.

Two namespace policies delete messages a subscription has not acknowledged:
- the message TTL (GET /admin/v2/namespaces/{tenant}/{ns}/messageTTL: an integer of seconds,
  no body when unset; 0 disables it), which acknowledges expired messages for every
  subscription;
- a time-based backlog quota (GET .../backlogQuotaMap: {"message_age": {"limitTime": s,
  "policy": "consumer_backlog_eviction"}, "destination_storage": {...}}) with the
  eviction policy, which drops the slowest subscriptions' oldest messages.
Retention policies (retentionTimeInMinutes) apply to acknowledged messages only and never
remove an unread one, so they are not limits here. The effective limit is the smaller of
the two; None (no headroom series) when neither is set, which also covers a broker-level
default mqwatch cannot see (ttlDurationDefaultInSeconds). Shapes from apache/pulsar's
Namespaces (getNamespaceMessageTTL returns Integer) and BacklogQuota / BacklogQuotaType.
Re-read every `retention_refresh`.
"""

from __future__ import annotations

import time
from urllib.parse import quote

EVICTION = "consumer_backlog_eviction"


def limit_seconds(ttl, quotas) -> float | None:
    limits = []
    if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl > 0:
        limits.append(float(ttl))
    age = quotas.get("message_age") if isinstance(quotas, dict) else None
    if isinstance(age, dict) and age.get("policy") == EVICTION:
        t = age.get("limitTime")
        if isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0:
            limits.append(float(t))
    return min(limits) if limits else None


def namespace_of(topic: str) -> str:
    """`persistent://tenant/ns/orders` -> `tenant/ns`."""
    rest = topic.partition("://")[2]
    return rest.rsplit("/", 1)[0]


class NamespaceLimits:
    def __init__(self, refresh: float):
        self.refresh = refresh
        self.seconds: dict = {}  # "tenant/ns" -> seconds an unacknowledged message is kept
        self._read_at: float | None = None

    def update(self, admin, namespaces, deadline: float) -> list[tuple[str, str]]:
        """Re-read when due; returns (reason, message) errors (values of failed namespaces are kept)."""
        now = time.monotonic()
        if not self.refresh or (self._read_at is not None and now - self._read_at < self.refresh):
            return []
        if deadline - now <= 0.05:  # the collection ran out of time: try again next cycle
            return []
        self._read_at = now
        errors, seconds = [], {}
        for ns in sorted(namespaces):
            base = f"{admin.base}/admin/v2/namespaces/{'/'.join(quote(p, safe='') for p in ns.split('/'))}"
            try:
                ttl = admin.get_json_or_none(f"{base}/messageTTL", deadline)
                quotas = admin.get_json_or_none(f"{base}/backlogQuotaMap", deadline)
            except Exception as e:  # HttpError, BadReply: this namespace only
                if ns in self.seconds:
                    seconds[ns] = self.seconds[ns]
                if getattr(e, "reason", "") == "timeout":  # out of time: keep the rest, read them next cycle
                    seconds.update({n: v for n, v in self.seconds.items() if n not in seconds})
                    self._read_at = None
                    break
                errors.append((getattr(e, "reason", "bad_reply"), f"retention policies of {ns}: {e}"))
                continue
            limit = limit_seconds(ttl, quotas)
            if limit is not None:
                seconds[ns] = limit
        self.seconds = seconds
        return errors
