"""Pulsar admin REST API (v2) -> ClusterState. I/O and shape checking only.

Endpoints (apache/pulsar, pulsar-broker admin v2): GET /admin/v2/tenants,
/admin/v2/namespaces/{tenant}, /admin/v2/{domain}/{tenant}/{ns} (topics, including the
`-partition-N` topics of partitioned ones), /admin/v2/{domain}/{tenant}/{ns}/partitioned,
.../{topic}/stats (TopicStatsImpl), .../{topic}/partitioned-stats (PartitionedTopicStatsImpl),
/admin/v2/clusters, /admin/v2/brokers/{cluster}, /admin/v2/brokers/health.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

from mqwatch.checks.pulsar.http import HttpError, TokenSession, get, get_json, new_session
from mqwatch.checks.pulsar.model import (
    NOT_PARTITIONED, ClusterState, PartitionState, SubscriptionState, TopicState, namespace_and_local,
    split_partition,
)

DOMAINS = ("persistent", "non-persistent")
# Exact backlog and backlog sizes make the broker read ledgers; the earliest publish
# time is what lag in seconds needs.
_STATS_QUERY = "getPreciseBacklog=false&subscriptionBacklogSize=false&getEarliestTimeInBacklog=true"


_DETAIL_BYTES = 4096  # a health check answers "ok"


class BadReply(Exception):
    pass


class _DeadlineReached(HttpError):
    pass


class AdminClient:
    def __init__(self, base_url: str, auth, tls, request_timeout: float, max_concurrency: int,
                 max_bytes: int | None = None, allowed_hosts=()):
        self.base = base_url.rstrip("/")  # may carry a path prefix (a proxy's /pulsar): kept as is
        self.request_timeout = request_timeout
        self.max_concurrency = max_concurrency
        self.max_bytes = max_bytes
        # The token goes to the configured admin URL (and allowed_hosts), never to the broker
        # addresses the admin API lists or redirects to.
        self.session: TokenSession = new_session(auth, tls, [self.base, *allowed_hosts], request_timeout,
                                                 pool_maxsize=max_concurrency)
        self._pool = ThreadPoolExecutor(max_concurrency, thread_name_prefix="mqwatch-pulsar-admin")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    # ---- one collection -------------------------------------------------------------------

    def fetch(self, topic_filter, deadline: float, keep=None,
              broker_health: bool = True) -> tuple[ClusterState, list[tuple[str, str]]]:
        """Every topic's stats plus broker health. Raises HttpError when not even tenants can be listed.
        `keep(names) -> names`: ask the stats of these only (a shard's topics); `broker_health`:
        whether to ask the brokers' health (shard 0 only)."""
        errors: list[tuple[str, str]] = []
        state = ClusterState(source="admin")
        tenants = _str_list(self._get(f"{self.base}/admin/v2/tenants", deadline), "tenants")
        namespaces = []

        def list_namespaces(tenant):
            return self._get(f"{self.base}/admin/v2/namespaces/{quote(tenant, safe='')}", deadline)

        for tenant, result in self._map(list_namespaces, tenants):
            if isinstance(result, Exception):
                errors.append(_as_error(result, f"namespaces of tenant {tenant}"))
            else:
                namespaces += _str_list(result, f"namespaces of tenant {tenant}", errors)

        listings = [(d, ns, kind) for ns in namespaces for d in DOMAINS for kind in ("", "/partitioned")]
        partitioned, plain = set(), set()
        for (domain, ns, kind), result in self._map(
            lambda job: self._get(f"{self.base}/admin/v2/{job[0]}/{job[1]}{job[2]}", deadline), listings
        ):
            if isinstance(result, Exception):
                if not (isinstance(result, HttpError) and result.status == 404 and domain == "non-persistent"):
                    errors.append(_as_error(result, f"{domain} topics of {ns}"))
                continue
            names = _str_list(result, f"{domain} topics of {ns}", errors)
            (partitioned if kind else plain).update(names)
        # A partitioned topic's partitions are listed as topics too: report them through their parent.
        plain = {t for t in plain if split_partition(t)[0] not in partitioned}
        jobs = sorted((t, True) for t in partitioned if topic_filter(t)) + sorted((t, False) for t in plain if topic_filter(t))
        if keep is not None:
            wanted = keep({t for t, _ in jobs})
            jobs = [job for job in jobs if job[0] in wanted]

        skipped = []
        for (topic, _), result in self._map(lambda job: self._topic_stats(job[0], job[1], deadline), jobs):
            if isinstance(result, _DeadlineReached):
                skipped.append(topic)
            elif isinstance(result, Exception):
                errors.append(_as_error(result, f"stats of {topic}"))
            else:
                state.topics[topic] = result
        if skipped:  # one error, not thousands, when the collection runs out of time
            errors.append(("timeout", f"collection deadline reached: stats of {len(skipped)} of {len(jobs)} topics "
                                      f"not fetched (first: {skipped[0]}); raise the check's timeout or max_concurrency"))

        state.complete = not errors
        state.brokers = self._broker_health(deadline, errors) if broker_health else {}
        return state, errors

    def _topic_stats(self, topic: str, is_partitioned: bool, deadline: float) -> TopicState:
        path = _topic_path(topic)
        if is_partitioned:
            doc = self._get(f"{self.base}{path}/partitioned-stats?perPartition=true&{_STATS_QUERY}", deadline)
            return topic_from_partitioned_stats(topic, doc)
        doc = self._get(f"{self.base}{path}/stats?{_STATS_QUERY}", deadline)
        t = TopicState(topic)
        t.partitions[NOT_PARTITIONED] = partition_from_stats(doc, topic)
        return t

    def _broker_health(self, deadline: float, errors: list) -> dict[str, bool]:
        """broker -> passed its health check. A broker not checked in time is left out, not called unhealthy."""
        if deadline - time.monotonic() <= 0.01:
            errors.append(("timeout", "collection deadline reached: broker health not checked"))
            return {}
        brokers: list[str] = []
        try:
            for cluster in _str_list(self._get(f"{self.base}/admin/v2/clusters", deadline), "clusters"):
                try:
                    brokers += _str_list(self._get(f"{self.base}/admin/v2/brokers/{quote(cluster, safe='')}", deadline),
                                         f"brokers of cluster {cluster}")
                except HttpError as e:
                    if e.status != 404 and e.status != 307:  # a cluster this broker does not serve
                        errors.append(_as_error(e, f"brokers of cluster {cluster}"))
        except (HttpError, BadReply) as e:
            errors.append(_as_error(e, "clusters"))
        scheme = urlsplit(self.base).scheme
        if not brokers:  # at least judge the broker we talk to
            brokers = [urlsplit(self.base).netloc]
        health: dict[str, bool] = {}
        not_trusted = []
        for broker, result in self._map(
            lambda b: get(self.session, f"{scheme}://{b}/admin/v2/brokers/health", self._timeout(deadline),
                          max_bytes=_DETAIL_BYTES), sorted(set(brokers))
        ):
            if isinstance(result, _DeadlineReached):
                continue
            if (isinstance(result, HttpError) and result.reason == "auth"
                    and not self.session.may_send_token(f"{scheme}://{broker}")):
                not_trusted.append(broker)  # wants the token we keep for configured hosts: not judged
                continue
            healthy = not isinstance(result, Exception) and result.text.strip().strip('"') == "ok"
            if not healthy:
                detail = str(result) if isinstance(result, Exception) else f"answered {result.text[:60]!r}"
                errors.append(("broker_unhealthy", f"broker {broker} failed its health check: {detail}"))
            health[broker] = healthy
        if not_trusted:
            errors.append(("auth", f"broker health of {', '.join(not_trusted)} not checked: it needs the token, "
                                   "which is only sent to configured hosts (add them to auth.allowed_hosts)"))
        return health

    # ---- plumbing ---------------------------------------------------------------------------

    def _timeout(self, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0.01:
            raise _DeadlineReached("timeout", "collection deadline reached before this request could start")
        return min(self.request_timeout, left)

    def _get(self, url: str, deadline: float):
        return get_json(self.session, url, self._timeout(deadline), max_bytes=self.max_bytes, cap_key="max_admin_bytes")

    def get_json_or_none(self, url: str, deadline: float):
        """A GET whose answer may be empty (JAX-RS answers a null policy with 204 and no body)."""
        resp = get(self.session, url, self._timeout(deadline))
        if resp.status_code == 204 or not resp.content.strip():
            return None
        try:
            return resp.json()
        except ValueError:
            raise BadReply(f"{url}: the reply is not JSON: {resp.text[:80]!r}") from None

    def _map(self, fn, items):
        """(item, result or exception) for every item, at most max_concurrency at once."""
        items = list(items)

        def safe(item):
            try:
                return fn(item)
            except (HttpError, BadReply) as e:
                return e
            except Exception as e:  # a reply shaped in a way nobody foresaw must not end the collection
                return BadReply(f"unexpected reply: {type(e).__name__}: {e}")

        return list(zip(items, self._pool.map(safe, items)))


# ---- JSON shapes -> model (pure, so tests can feed them any reply) ------------------------------

def partition_from_stats(doc, where: str) -> PartitionState:
    if not isinstance(doc, dict):
        raise BadReply(f"{where}: expected a TopicStats object, got {type(doc).__name__}")
    subs = doc.get("subscriptions") or {}
    if not isinstance(subs, dict):
        raise BadReply(f"{where}: subscriptions is not an object")
    part = PartitionState(produced=_num(doc, "msgInCounter", where), storage_bytes=_num(doc, "storageSize", where))
    for name, s in subs.items():
        if not isinstance(s, dict):
            raise BadReply(f"{where}: subscription {name!r} is not an object")
        consumers = s.get("consumers") or []
        earliest = _num(s, "earliestMsgPublishTimeInBacklog", where)
        part.subscriptions[name] = SubscriptionState(
            backlog=_num(s, "msgBacklog", where) or 0.0,
            unacked=_num(s, "unackedMessages", where) or 0.0,
            consumers=len(consumers) if isinstance(consumers, list) else 0,
            blocked=bool(s.get("blockedSubscriptionOnUnackedMsgs", False)),
            earliest_publish_ms=int(earliest) if earliest and earliest > 0 else None,
            last_acked_ms=_num(s, "lastAckedTimestamp", where),
            expired=_num(s, "totalMsgExpired", where),
            delivered=_num(s, "msgOutCounter", where),
        )
    return part


def topic_from_partitioned_stats(topic: str, doc) -> TopicState:
    if not isinstance(doc, dict):
        raise BadReply(f"{topic}: expected a PartitionedTopicStats object, got {type(doc).__name__}")
    t = TopicState(topic)
    partitions = doc.get("partitions") or {}
    if not isinstance(partitions, dict):
        raise BadReply(f"{topic}: partitions is not an object")
    for name, stats in partitions.items():
        _, n = split_partition(name)
        if n == NOT_PARTITIONED:
            raise BadReply(f"{topic}: partitions has an entry {name!r} that names no partition")
        t.partitions[n] = partition_from_stats(stats, f"{topic} partition {n}")
    if not t.partitions:  # broker answered without per-partition detail: use its aggregate
        t.partitions[NOT_PARTITIONED] = partition_from_stats(doc, topic)
    return t


def _topic_path(full_name: str) -> str:
    domain, _, rest = full_name.partition("://")
    ns, local = namespace_and_local(rest)
    return f"/admin/v2/{domain}/{ns}/{quote(local, safe='')}"


def _num(d: dict, key: str, where: str):
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadReply(f"{where}: {key} is not a number: {v!r}")
    return float(v)


def _str_list(doc, what: str, errors: list | None = None) -> list[str]:
    if isinstance(doc, list) and all(isinstance(x, str) for x in doc):
        return doc
    problem = BadReply(f"{what}: expected a list of names, got {str(doc)[:80]!r}")
    if errors is None:
        raise problem
    errors.append(("bad_reply", str(problem)))
    return []


def _as_error(e: Exception, what: str) -> tuple[str, str]:
    if isinstance(e, HttpError):
        return e.reason, f"{what}: {e}"
    return "bad_reply", f"{what}: {e}"
