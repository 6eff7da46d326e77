"""The status page's flow columns: drain ETA next to lag ("never" for +Inf) and the poison-message table.

Synthetic snapshots as the checks publish them (each check has its own tests against its
broker; this one is about what the page makes of the series)."""

import time

from mqwatch.agent.app import Agent
from mqwatch.agent.config import parse_config
from mqwatch.agent.metrics import (CONSUMER_DRAIN_SECONDS, CONSUMER_LAG_MESSAGES, CONSUMER_LAG_SECONDS, PENDING_MAX_DELIVERIES,
                           PENDING_REDELIVERED)
from mqwatch.agent.snapshot import SnapshotBuilder
from mqwatch.agent.statuspage import render_status_page


def _page():
    agent = Agent(parse_config("agent: {interval: 1s}\nchecks: []\n", "page.yaml", {}))
    b = SnapshotBuilder("redis", "jobs", (CONSUMER_LAG_MESSAGES, CONSUMER_LAG_SECONDS, CONSUMER_DRAIN_SECONDS,
                                          PENDING_MAX_DELIVERIES, PENDING_REDELIVERED))
    for group, lag, drain in (("billing", 400, 20.0), ("audit", 900, float("inf")), ("search", 0, 0.0)):
        b.add("mqwatch_consumer_lag_messages", lag, queue="stream:orders", consumer=group)
        b.add("mqwatch_consumer_lag_seconds", lag / 10, queue="stream:orders", consumer=group)
        b.add("mqwatch_consumer_drain_seconds", drain, queue="stream:orders", consumer=group)
    b.add("mqwatch_consumer_lag_messages", 5, queue="stream:new", consumer="fresh")  # no rate yet: no drain series
    b.add("mqwatch_pending_max_deliveries", 7, queue="stream:orders", consumer="billing")
    b.add("mqwatch_pending_redelivered_messages", 2, queue="stream:orders", consumer="billing")
    b.add("mqwatch_pending_max_deliveries", 1, queue="stream:orders", consumer="audit")  # delivered once: fine
    agent.exporter.publish(b.build(time.time(), 0.01))
    return render_status_page(agent)


def _row(page, consumer):
    """The consumer's row of the consumers table (cells may carry classes: match the closing bracket)."""
    table = page.split("<table id='consumers'>", 1)[1].split("</table>", 1)[0]
    return next(r for r in table.split("<tr") if f">{consumer}</td>" in r)


def test_drain_column_says_when_each_consumer_catches_up_and_never_for_one_not_gaining():
    page = _page()
    assert "drains in</th>" in page
    assert "<td class='drain'>20s</td>" in _row(page, "billing")
    assert "<td class='drain'>never</td>" in _row(page, "audit")
    assert "<td class='drain'>0s</td>" in _row(page, "search")
    assert "<td class='drain'>–</td>" in _row(page, "fresh")


def test_poison_table_lists_consumers_with_messages_delivered_more_than_once():
    page = _page()
    table = page.split("<table id='poison'>", 1)[1].split("</table>", 1)[0]
    assert "<td class='max-deliveries'>7</td><td class='redelivered'>2</td>" in table
    assert "billing" in table and "audit" not in table
