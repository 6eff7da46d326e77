"""Broker /metrics endpoints -> ClusterState. I/O only; parsing is in exposition.py."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from mqwatch.checks.pulsar.exposition import ExpositionError, parse_exposition, topics_in
from mqwatch.checks.pulsar.http import HttpError, get, new_session, shown
from mqwatch.checks.pulsar.model import ClusterState


class MetricsScraper:
    def __init__(self, urls: list[str], auth, tls, request_timeout: float, max_bytes: int | None = None,
                 allowed_hosts=()):
        self.urls = urls
        self.request_timeout = request_timeout
        self.max_bytes = max_bytes
        self.session = new_session(auth, tls, list(allowed_hosts) or urls, request_timeout)
        self._pool = ThreadPoolExecutor(min(8, max(1, len(urls))), thread_name_prefix="mqwatch-pulsar-scrape")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.session.close()

    def fetch(self, deadline: float, keep=None) -> tuple[ClusterState, list[tuple[str, str]]]:
        """Union of every endpoint's topics; an endpoint that fails is unhealthy and reported.
        `keep(names) -> names`: parse only these of the topics every endpoint names (a shard's)."""
        state = ClusterState(source="metrics")
        errors: list[tuple[str, str]] = []

        def one(url):
            left = deadline - time.monotonic()
            if left <= 0.01:
                return HttpError("timeout", f"GET {shown(url)}: collection deadline reached before the scrape")
            try:
                resp = get(self.session, url, min(self.request_timeout, left), accept="text/plain",
                           max_bytes=self.max_bytes, cap_key="max_metrics_bytes")
                # The exposition format is UTF-8 by definition; requests would guess the charset of megabytes.
                return resp.content.decode("utf-8", errors="replace")
            except HttpError as e:
                return e

        results = list(zip(self.urls, self._pool.map(one, self.urls)))
        topics = None
        if keep is not None:  # over every endpoint: a DLQ's source topic may live on another broker
            topics = keep(set().union(*(topics_in(r) for _, r in results if isinstance(r, str))))
        for url, result in results:
            broker = urlsplit(url).netloc.rsplit("@", 1)[-1]
            if isinstance(result, HttpError):
                errors.append((result.reason, str(result)))
                state.brokers[broker] = False
                state.complete = False
                continue
            try:
                parse_exposition(result, state, source=broker, topics=topics)
            except ExpositionError as e:
                errors.append(("bad_reply", f"{shown(url)}: {e}"))
                state.brokers[broker] = False
                state.complete = False
                continue
            state.brokers[broker] = True
        return state, errors
