"""The HTML status page at `/`: what an on-call engineer needs at a glance.

A headline badge with the worst state of what is watched, the alerts firing in Alertmanager
(when `agent.alertmanager_url` is set), each check's health, the worst consumers by lag in
seconds, growing DLQs with their top reasons, overdue delayed queues; each with a sparkline
of its recent history, refreshing by itself. Built from the snapshots the exporter already
holds (no collection here) and fits a 1280 px wide screen: long names wrap, long reasons are
cut with the full text on hover.
"""

from __future__ import annotations

import calendar
import html
import time

from mqwatch.agent import alertmanager
from mqwatch.agent.headline import dlq_growth, headline
from mqwatch.agent.redact import redact

REFRESH_SECONDS = 10
TOP_ROWS = 15


def _e(text) -> str:
    return html.escape(redact(text), quote=True)  # every text on the page passes here


def sparkline(points, width: int = 120, height: int = 24) -> str:
    """An inline SVG polyline of (time, value) points; empty when there is nothing to draw."""
    values = [v for _, v in points]
    if len(values) < 2:
        return f"<svg class='spark' width='{width}' height='{height}'></svg>"
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = width / (len(values) - 1)
    coords = " ".join(f"{i * step:.1f},{height - 2 - (v - lo) / span * (height - 4):.1f}" for i, v in enumerate(values))
    return (f"<svg class='spark' width='{width}' height='{height}' viewBox='0 0 {width} {height}'>"
            f"<polyline fill='none' stroke='currentColor' stroke-width='1.5' points='{coords}'/></svg>")


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.1f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def _fmt_drain(s: float | None) -> str:
    """Drain ETA: `never` for +Inf (lag and not gaining), `–` while unknown."""
    if s is None:
        return "–"
    return "never" if s == float("inf") else _fmt_seconds(s)


def _series(st, name):
    if not st.up:
        return []
    return [(dict(labels), value) for labels, value in st.snapshot.families.get(name, ())]


def _history(st, name, labels: dict):
    key = (name, tuple(sorted(labels.items())))
    return list(st.history.get(key, ()))


def _checks_table(states, now) -> str:
    rows = []
    for st in states:
        if st.snapshot is None:
            health = "pending"
        else:
            health = "up" if st.up else "down"
        age = "never" if st.last_success is None else f"{_fmt_seconds(now - st.last_success)} ago"
        duration = "" if st.last_duration is None else f"{st.last_duration:.3f}s"
        rows.append(
            f"<tr class='check {health}' data-check='{_e(st.key)}'><td>{_e(st.kind)}</td><td>{_e(st.name)}</td>"
            f"<td class='health'>{health}</td><td>{age}</td><td>{duration}</td>"
            f"<td>{st.snapshot.series if st.snapshot else 0}</td><td class='error'>{_e(st.last_error)}</td></tr>")
    return ("<table id='checks'><tr><th>system</th><th>cluster</th><th>health</th><th>last success</th>"
            "<th>duration</th><th>series</th><th>last error</th></tr>" + "".join(rows) + "</table>")


def _consumers_table(states) -> str:
    rows = []
    for st in states:
        statuses = {}
        for labels, value in _series(st, "mqwatch_consumer_status"):
            if value == 1:
                statuses[(labels.get("queue"), labels.get("consumer"))] = labels.get("status")
        seconds = {(lbl.get("queue"), lbl.get("consumer")): v for lbl, v in _series(st, "mqwatch_consumer_lag_seconds")}
        drain = {(lbl.get("queue"), lbl.get("consumer")): v for lbl, v in _series(st, "mqwatch_consumer_drain_seconds")}
        for labels, messages in _series(st, "mqwatch_consumer_lag_messages"):
            key = (labels.get("queue"), labels.get("consumer"))
            secs = seconds.get(key)
            hist_name = "mqwatch_consumer_lag_seconds" if secs is not None else "mqwatch_consumer_lag_messages"
            rows.append((secs if secs is not None else -1.0, messages, st, labels, statuses.get(key, ""),
                         _history(st, hist_name, labels), drain.get(key)))
    rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
    html_rows = "".join(
        f"<tr class='consumer status-{_e(status or 'unknown')}'><td>{_e(st.kind)}/{_e(st.name)}</td>"
        f"<td class='name'>{_e(lbl.get('queue', ''))}</td><td class='name'>{_e(lbl.get('consumer', ''))}</td>"
        f"<td class='lag-seconds'>{_fmt_seconds(secs) if secs >= 0 else '–'}</td><td class='lag-messages'>{msgs:.0f}</td>"
        f"<td class='drain'>{_fmt_drain(drain)}</td>"
        f"<td class='status'>{_e(status)}</td><td>{sparkline(hist)}</td></tr>"
        for secs, msgs, st, lbl, status, hist, drain in rows[:TOP_ROWS])
    return ("<table id='consumers'><tr><th>check</th><th>queue</th><th>consumer</th><th>lag</th>"
            "<th>messages</th><th title='at the current net drain rate'>drains in</th><th>status</th>"
            "<th>history</th></tr>" + html_rows + "</table>")


def _poison_table(states) -> str:
    """Consumers holding messages delivered again and again (poison messages, crash loops)."""
    rows = []
    for st in states:
        redelivered = {(lbl.get("queue"), lbl.get("consumer")): v
                       for lbl, v in _series(st, "mqwatch_pending_redelivered_messages")}
        for labels, deliveries in _series(st, "mqwatch_pending_max_deliveries"):
            if deliveries > 1:
                rows.append((deliveries, st, labels, redelivered.get((labels.get("queue"), labels.get("consumer")))))
    rows.sort(key=lambda r: r[0], reverse=True)
    html_rows = "".join(
        f"<tr class='poison'><td>{_e(st.kind)}/{_e(st.name)}</td><td class='name'>{_e(lbl.get('queue', ''))}</td>"
        f"<td>{_e(lbl.get('consumer', ''))}</td><td class='max-deliveries'>{n:.0f}</td>"
        f"<td class='redelivered'>{'–' if r is None else f'{r:.0f}'}</td></tr>"
        for n, st, lbl, r in rows[:TOP_ROWS])
    return ("<table id='poison'><tr><th>check</th><th>queue</th><th>consumer</th><th>most deliveries of one message</th>"
            "<th>messages delivered more than once</th></tr>" + html_rows + "</table>")


def _cut(text: str) -> str:
    """Long text cut to the cell's width by CSS, the full text on hover."""
    return f"<span class='cut' title='{_e(text)}'>{_e(text)}</span>"


def _dlq_rows(states) -> list:
    """(growth, messages, state, labels, top reasons, history, source) per DLQ, growing first."""
    rows = []
    for st in states:
        reasons: dict = {}
        for labels, value in _series(st, "mqwatch_dlq_reason_messages"):
            reasons.setdefault(labels.get("dlq"), []).append((value, labels.get("reason", "")))
        # A set shared by several queues (Sidekiq's `dead`) has no one source on the gauge;
        # its arrivals counter knows the source of each dead job.
        sources: dict = {}
        for labels, value in _series(st, "mqwatch_dlq_messages_total"):
            if value > 0 and labels.get("source"):
                sources.setdefault(labels.get("dlq"), set()).add(labels["source"])
        for labels, messages in _series(st, "mqwatch_dlq_messages"):
            hist = _history(st, "mqwatch_dlq_messages", labels)
            growth = dlq_growth(st, labels)
            top = sorted(reasons.get(labels.get("dlq"), []), reverse=True)[:3]
            source = labels.get("source") or ", ".join(sorted(sources.get(labels.get("dlq"), ())))
            rows.append((growth, messages, st, labels, top, hist, source))
    rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
    return rows


def _dlq_table(states) -> str:
    html_rows = "".join(
        f"<tr class='dlq{' growing' if growth > 0 else ''}'><td>{_e(st.kind)}/{_e(st.name)}</td>"
        f"<td class='name'>{_e(lbl.get('dlq', ''))}</td><td class='name'>{_e(source)}</td>"
        f"<td class='dlq-messages'>{msgs:.0f}</td>"
        f"<td>{'+' if growth > 0 else ''}{growth:.0f}</td>"
        f"<td class='reasons'>{''.join(_cut(f'{r} ({n:.0f})') for n, r in top)}</td><td>{sparkline(hist)}</td></tr>"
        for growth, msgs, st, lbl, top, hist, source in _dlq_rows(states)[:TOP_ROWS])
    return ("<table id='dlqs'><tr><th>check</th><th>dead-letter queue</th><th>source</th><th>messages</th>"
            "<th>recent growth</th><th>top reasons</th><th>history</th></tr>" + html_rows + "</table>")


def _queue_name(labels: dict) -> str:
    framework = labels.get("framework")
    queue = labels.get("queue", "")
    return f"{queue} ({framework})" if framework and framework != "plain" else queue


def _delayed_rows(states) -> list:
    rows = []
    for st in states:
        # Redis job frameworks may each have a delayed queue of one name: `framework` tells them apart.
        overdue_msgs = {(lbl.get("queue"), lbl.get("framework")): v
                        for lbl, v in _series(st, "mqwatch_delayed_overdue_messages")}
        for labels, seconds in _series(st, "mqwatch_delayed_overdue_seconds"):
            if seconds <= 0:
                continue
            rows.append((seconds, overdue_msgs.get((labels.get("queue"), labels.get("framework")), 0.0), st, labels,
                         _history(st, "mqwatch_delayed_overdue_seconds", labels)))
    rows.sort(key=lambda r: r[0], reverse=True)
    return rows


def _delayed_table(states) -> str:
    rows = _delayed_rows(states)
    html_rows = "".join(
        f"<tr class='delayed'><td>{_e(st.kind)}/{_e(st.name)}</td><td class='name'>{_e(_queue_name(lbl))}</td>"
        f"<td class='overdue-messages'>{n:.0f}</td><td class='overdue-seconds'>{_fmt_seconds(s)}</td>"
        f"<td>{sparkline(hist)}</td></tr>"
        for s, n, st, lbl, hist in rows[:TOP_ROWS])
    return ("<table id='delayed'><tr><th>check</th><th>delayed queue</th><th>overdue messages</th>"
            "<th>most overdue by</th><th>history</th></tr>" + html_rows + "</table>")


def _since(iso: str, now: float) -> str:
    try:
        started = calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S"))  # Alertmanager speaks UTC
    except ValueError:
        return _e(iso)
    return f"{_fmt_seconds(max(0.0, now - started))} ago"


def _alerts_section(view, url: str, now: float) -> str:
    if view is None:
        return ("<p class='muted'>Set <code>agent.alertmanager_url</code> to list the alerts firing in "
                "Alertmanager here.</p>")
    if view.error:
        return f"<p class='error'>Alertmanager at {_e(url)} could not be read: {_e(view.error)}</p>"
    if not view.alerts:
        return f"<p class='muted'>No alert firing in <a href='{_e(url)}'>Alertmanager</a>.</p>"
    rows = []
    for a in view.alerts:
        where = "/".join(v for v in (a.labels.get("system"), a.labels.get("cluster")) if v)
        labels = " ".join(f"{k}={v}" for k, v in sorted(a.labels.items()))  # on hover: the summary names the object
        runbook = f"<a href='{_e(a.runbook_url)}'>runbook</a>" if a.runbook_url else ""
        rows.append(f"<tr class='alert severity-{_e(a.severity or 'none')}'>"
                    f"<td class='alertname' title='{_e(labels)}'>{_e(a.name)}</td>"
                    f"<td class='severity'>{_e(a.severity)}</td><td>{_e(where)}</td>"
                    f"<td class='summary'>{_e(a.summary)}</td><td>{_since(a.starts_at, now)}</td><td>{runbook}</td></tr>")
    return ("<table id='alerts'><tr><th>alert</th><th>severity</th><th>check</th><th>summary</th>"
            "<th>since</th><th></th></tr>" + "".join(rows) + "</table>")


def _readiness(states) -> str:
    waiting = sum(1 for s in states if s.completed == 0)
    if waiting:
        return f"starting: {waiting} of {len(states)} checks have not completed a collection yet"
    return "every check has completed a collection"


def render_status_page(agent) -> str:
    now = time.time()
    states = sorted(agent.exporter.states(), key=lambda s: s.key)
    am_url = agent.config.agent.alertmanager_url
    alerts = alertmanager.source(am_url).view() if am_url else None
    head = headline(states, alerts)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mqwatch</title>
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #1f2328; }}
h2 {{ margin-top: 1.6em; font-size: 1.1em; }}
table {{ border-collapse: collapse; max-width: 100%; }}
td, th {{ border-bottom: 1px solid #d0d7de; padding: .3em .8em; text-align: left; vertical-align: middle; }}
th {{ background: #f6f8fa; }}
td.name, td.error, td.summary {{ overflow-wrap: anywhere; }}
td.name {{ max-width: 24em; }} td.error {{ max-width: 36em; }} td.summary {{ max-width: 40em; }}
td.reasons {{ max-width: 22em; }}
.cut {{ display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }}
.health {{ font-weight: bold; }}
tr.up .health {{ color: #1a7f37; }}
tr.down .health, tr.down .error, p.error {{ color: #cf222e; }}
tr.pending .health {{ color: #9a6700; }}
tr.status-stalled .status, tr.status-stopped .status, tr.status-rewound .status {{ color: #cf222e; font-weight: bold; }}
tr.status-lagging .status {{ color: #9a6700; font-weight: bold; }}
tr.severity-critical .severity {{ color: #cf222e; font-weight: bold; }}
tr.severity-warning .severity {{ color: #9a6700; font-weight: bold; }}
tr.growing {{ background: #fff8f0; }}
.spark {{ color: #0969da; }}
.badge {{ padding: .5em 1em; display: inline-block; border-radius: 4px; color: #ffffff; font-weight: bold; }}
.badge.ok {{ background: #1a7f37; }} .badge.warn {{ background: #9a6700; }}
.badge.bad {{ background: #cf222e; }} .badge.pending {{ background: #656d76; }}
.muted {{ color: #656d76; font-size: .9em; }}
</style></head>
<body><h1>mqwatch</h1>
<p id="headline" class="badge {head.level}" data-level="{head.level}">{_e(head.text)}</p>
<p class="muted"><a href="/metrics">/metrics</a> · <a href="/status">/status</a> · {_readiness(states)} ·
refreshes every {REFRESH_SECONDS}s · {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(now))}</p>
<h2>Firing alerts</h2>
{_alerts_section(alerts, am_url, now)}
<h2>Checks</h2>
{_checks_table(states, now)}
<h2>Worst consumers by lag</h2>
{_consumers_table(states)}
<h2>Messages delivered again and again</h2>
{_poison_table(states)}
<h2>Dead-letter queues</h2>
{_dlq_table(states)}
<h2>Overdue delayed queues</h2>
{_delayed_table(states)}
</body></html>
"""
