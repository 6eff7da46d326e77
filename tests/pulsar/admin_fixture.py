"""A FIXTURE HTTP server that replays Pulsar admin REST API (v2) replies.

pulsar-lite, the real broker these tests use, has no admin API, so this server stands in
for it. Shapes are those real Pulsar returns, taken from apache/pulsar:
- pulsar-common/.../policies/data/stats/TopicStatsImpl.java (topic /stats)
- pulsar-common/.../policies/data/stats/SubscriptionStatsImpl.java (subscriptions{})
- pulsar-common/.../policies/data/stats/ConsumerStatsImpl.java (consumers[])
- pulsar-common/.../policies/data/stats/PartitionedTopicStatsImpl.java (/partitioned-stats:
  TopicStats plus "metadata": {"partitions": N} and "partitions": {"<topic>-partition-N": TopicStats})
- pulsar-broker/.../admin/impl/BrokersBase.java (/brokers/{cluster}: a set of web service
  addresses host:port; /brokers/health: 200 "ok"), ClustersBase (/clusters: names),
  TenantsBase (/tenants: names), NamespacesBase (/namespaces/{tenant}: "tenant/ns"),
  PersistentTopics (/persistent/{t}/{ns}: full topic names including -partition-N ones;
  /persistent/{t}/{ns}/partitioned: partitioned topic names).
- NamespacesBase (/namespaces/{t}/{ns}/messageTTL: Integer or no body; /backlogQuotaMap:
  {"destination_storage"|"message_age": {"limitSize", "limitTime", "policy"}}).
- Errors are RestException bodies: {"reason": "..."} with the HTTP status.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def consumer_json(name: str, unacked: int = 0, blocked: bool = False) -> dict:
    return {
        "msgRateOut": 0.0, "msgThroughputOut": 0.0, "bytesOutCounter": 0, "msgOutCounter": 0,
        "msgRateRedeliver": 0.0, "messageAckRate": 0.0, "chunkedMessageRate": 0.0, "consumerName": name,
        "availablePermits": 1000, "unackedMessages": unacked, "avgMessagesPerEntry": 1,
        "blockedConsumerOnUnackedMsgs": blocked, "readPositionWhenJoining": "0:0",
        "lastAckedTimestamp": 0, "lastConsumedTimestamp": 0, "lastConsumedFlowTimestamp": 0,
        "keyHashRanges": None, "metadata": {}, "address": "/127.0.0.1:50000",
        "connectedSince": "2026-11-25T21:00:00.000Z", "clientVersion": "Pulsar-CPP-v3.5.0",
    }


def subscription_json(backlog: int, unacked: int = 0, consumers: int = 0, blocked: bool = False,
                      earliest_publish_ms: int = 0, sub_type: str = "Shared") -> dict:
    return {
        "msgRateOut": 0.0, "msgThroughputOut": 0.0, "bytesOutCounter": 0, "msgOutCounter": 0,
        "msgRateRedeliver": 0.0, "messageAckRate": 0.0, "chunkedMessageRate": 0, "msgBacklog": backlog,
        "backlogSize": -1, "earliestMsgPublishTimeInBacklog": earliest_publish_ms, "msgBacklogNoDelayed": backlog,
        "blockedSubscriptionOnUnackedMsgs": blocked, "msgDelayed": 0, "unackedMessages": unacked, "type": sub_type,
        "activeConsumerName": None, "msgRateExpired": 0.0, "totalMsgExpired": 0, "lastExpireTimestamp": 0,
        "lastConsumedFlowTimestamp": 0, "lastConsumedTimestamp": 0, "lastAckedTimestamp": 0,
        "lastMarkDeleteAdvancedTimestamp": 0,
        "consumers": [consumer_json(f"c{i}", unacked if i == 0 else 0, blocked) for i in range(consumers)],
        "isDurable": True, "isReplicated": False, "allowOutOfOrderDelivery": False,
        "consumersAfterMarkDeletePosition": {}, "nonContiguousDeletedMessagesRanges": 0,
        "nonContiguousDeletedMessagesRangesSerializedSize": 0, "delayedMessageIndexSizeInBytes": 0,
        "subscriptionProperties": {}, "filterProcessedMsgCount": 0, "filterAcceptedMsgCount": 0,
        "filterRejectedMsgCount": 0, "filterRescheduledMsgCount": 0,
    }


def topic_stats_json(msg_in: int, storage: int, subscriptions: dict) -> dict:
    earliest = [s["earliestMsgPublishTimeInBacklog"] for s in subscriptions.values() if s["earliestMsgPublishTimeInBacklog"]]
    return {
        "msgRateIn": 0.0, "msgThroughputIn": 0.0, "msgRateOut": 0.0, "msgThroughputOut": 0.0,
        "bytesInCounter": storage, "msgInCounter": msg_in, "bytesOutCounter": 0, "msgOutCounter": 0,
        "averageMsgSize": 0.0, "msgChunkPublished": False, "storageSize": storage, "backlogSize": 0,
        "publishRateLimitedTimes": 0, "earliestMsgPublishTimeInBacklogs": min(earliest) if earliest else 0,
        "offloadedStorageSize": 0, "lastOffloadLedgerId": 0, "lastOffloadSuccessTimeStamp": 0,
        "lastOffloadFailureTimeStamp": 0, "ongoingTxnCount": 0, "abortedTxnCount": 0, "committedTxnCount": 0,
        "publishers": [], "waitingPublishers": 0, "subscriptions": subscriptions, "replication": {},
        "deduplicationStatus": "Disabled", "nonContiguousDeletedMessagesRanges": 0,
        "nonContiguousDeletedMessagesRangesSerializedSize": 0, "delayedMessageIndexSizeInBytes": 0,
        "compaction": {"lastCompactionRemovedEventCount": 0, "lastCompactionSucceedTimestamp": 0,
                       "lastCompactionFailedTimestamp": 0, "lastCompactionDurationTimeInMills": 0},
        "ownerBroker": "127.0.0.1:8080",
    }


def partitioned_stats_json(topic: str, partitions: list[dict]) -> dict:
    """PartitionedTopicStatsImpl: the summed TopicStats plus metadata and per-partition stats."""
    total_subs: dict = {}
    for p in partitions:
        for name, s in p["subscriptions"].items():
            agg = total_subs.setdefault(name, dict(s, msgBacklog=0, unackedMessages=0, msgBacklogNoDelayed=0))
            agg["msgBacklog"] += s["msgBacklog"]
            agg["unackedMessages"] += s["unackedMessages"]
    doc = topic_stats_json(sum(p["msgInCounter"] for p in partitions), sum(p["storageSize"] for p in partitions), total_subs)
    doc["metadata"] = {"partitions": len(partitions), "deleted": False}
    doc["partitions"] = {f"{topic}-partition-{i}": p for i, p in enumerate(partitions)}
    return doc


class AdminFixture:
    """Routes: exact path -> JSON document; plus per-path failures (status, delay)."""

    def __init__(self):
        self.routes: dict[str, object] = {}
        self.failures: dict[str, tuple[int, str]] = {}
        self.delays: dict[str, float] = {}
        self.requests: list[str] = []
        self.authorizations: list[str] = []
        self.required_authorization = ""  # when set, any other Authorization header gets Pulsar's 401
        self.path_prefix = ""  # a reverse proxy's prefix (https://gateway/pulsar/admin/v2/...)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def set_cluster(self, cluster: str = "standalone", brokers=None, healthy: bool = True) -> None:
        self.routes["/admin/v2/clusters"] = [cluster]
        self.routes[f"/admin/v2/brokers/{cluster}"] = brokers if brokers is not None else [self.address]
        self.routes["/admin/v2/brokers/health"] = "ok" if healthy else None
        if not healthy:
            self.failures["/admin/v2/brokers/health"] = (500, "health check topic unavailable")

    def add_topics(self, topics: dict[str, dict], partitioned: dict[str, list[dict]] | None = None) -> None:
        """topics: full name -> TopicStats JSON; partitioned: full name -> per-partition TopicStats."""
        partitioned = partitioned or {}
        namespaces: dict[str, dict] = {}
        for name in list(topics) + list(partitioned):
            domain, _, rest = name.partition("://")
            tenant, ns, local = rest.split("/", 2)
            namespaces.setdefault((tenant, ns), {"persistent": [], "partitioned": []})
        for name, doc in topics.items():
            domain, _, rest = name.partition("://")
            tenant, ns, local = rest.split("/", 2)
            namespaces[(tenant, ns)]["persistent"].append(name)
            self.routes[f"/admin/v2/{domain}/{tenant}/{ns}/{local}/stats"] = doc
        for name, parts in partitioned.items():
            domain, _, rest = name.partition("://")
            tenant, ns, local = rest.split("/", 2)
            namespaces[(tenant, ns)]["partitioned"].append(name)
            namespaces[(tenant, ns)]["persistent"] += [f"{name}-partition-{i}" for i in range(len(parts))]
            self.routes[f"/admin/v2/{domain}/{tenant}/{ns}/{local}/partitioned-stats"] = partitioned_stats_json(name, parts)
        tenants = sorted({t for t, _ in namespaces})
        self.routes["/admin/v2/tenants"] = tenants
        for tenant in tenants:
            self.routes[f"/admin/v2/namespaces/{tenant}"] = [f"{t}/{n}" for t, n in sorted(namespaces) if t == tenant]
        for (tenant, ns), lists in namespaces.items():
            self.routes[f"/admin/v2/persistent/{tenant}/{ns}"] = lists["persistent"]
            self.routes[f"/admin/v2/persistent/{tenant}/{ns}/partitioned"] = lists["partitioned"]
            self.routes[f"/admin/v2/non-persistent/{tenant}/{ns}"] = []
            self.routes[f"/admin/v2/non-persistent/{tenant}/{ns}/partitioned"] = []
            # Namespace policies (Namespaces.getNamespaceMessageTTL: Integer, null when unset;
            # getBacklogQuotaMap: BacklogQuotaType -> BacklogQuota, empty when none is set).
            self.routes.setdefault(f"/admin/v2/namespaces/{tenant}/{ns}/messageTTL", None)
            self.routes.setdefault(f"/admin/v2/namespaces/{tenant}/{ns}/backlogQuotaMap", {})

    def _handler(self):
        fixture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = unquote(urlsplit(self.path).path)
                fixture.requests.append(self.path)
                fixture.authorizations.append(self.headers.get("Authorization", ""))
                if fixture.path_prefix:
                    if not path.startswith(fixture.path_prefix + "/"):
                        return self._send(404, b"not behind the prefix", "text/plain")
                    path = path[len(fixture.path_prefix):]
                if fixture.required_authorization and self.headers.get("Authorization") != fixture.required_authorization:
                    return self._send(401, json.dumps({"reason": "Authentication required"}).encode(), "application/json")
                delay = fixture.delays.get(path, fixture.delays.get("*", 0))
                if delay:
                    time.sleep(delay)
                if path in fixture.failures:
                    status, reason = fixture.failures[path]
                    return self._send(status, json.dumps({"reason": reason}).encode(), "application/json")
                if path not in fixture.routes:
                    return self._send(404, json.dumps({"reason": "Topic not found"}).encode(), "application/json")
                doc = fixture.routes[path]
                if path == "/admin/v2/brokers/health":
                    return self._send(200, b"ok", "text/plain")
                if doc is None:  # a null policy: JAX-RS answers 204 without a body
                    return self._send(204, b"", "application/json")
                body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                self._send(200, body, "application/json")

            def _send(self, status, body, ctype):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
