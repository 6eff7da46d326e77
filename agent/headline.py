"""The status page's headline: the worst state of what is watched, in a few words.

Collection health alone says nothing about the queues: "all checks collecting" is true while
a consumer group has stopped. The headline weighs both, from the snapshots the exporter holds
and the alerts firing in Alertmanager:

- bad: a check failing, a consumer stopped, stalled or rewound, a delayed queue overdue, a
  critical alert firing;
- warn: a consumer lagging, a dead-letter queue receiving, a warning (or other) alert firing,
  Alertmanager unreadable;
- pending: nothing wrong yet, but a check has not completed its first collection;
- ok: otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

BAD, WARN, PENDING, OK = "bad", "warn", "pending", "ok"
BAD_STATUSES = ("stopped", "stalled", "rewound")
# A poller moving due entries runs every few seconds; work this late means it is not running.
OVERDUE_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Headline:
    level: str
    problems: tuple[str, ...]  # e.g. "2 consumers stopped", worst first
    text: str


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _values(st, name):
    if not st.up:
        return []
    return [(dict(labels), value) for labels, value in st.snapshot.families.get(name, ())]


def dlq_growth(st, labels: dict) -> float:
    """How much a DLQ grew over the history the page keeps (its sparkline's window)."""
    hist = list(st.history.get(("mqwatch_dlq_messages", tuple(sorted(labels.items()))), ()))
    return (hist[-1][1] - hist[0][1]) if len(hist) >= 2 else 0.0


def headline(states, alerts=None) -> Headline:
    """states: the exporter's check states; alerts: an agent.alertmanager.AlertsView or None."""
    bad, warn = [], []
    failing = sum(1 for s in states if s.snapshot is not None and not s.up)
    pending = sum(1 for s in states if s.snapshot is None)
    statuses: dict[str, set] = {}
    receiving = overdue = 0
    for st in states:
        for labels, value in _values(st, "mqwatch_consumer_status"):
            if value == 1 and labels.get("status") not in (None, "ok"):
                statuses.setdefault(labels["status"], set()).add((st.key, labels.get("queue"), labels.get("consumer")))
        receiving += sum(1 for labels, _ in _values(st, "mqwatch_dlq_messages") if dlq_growth(st, labels) > 0)
        overdue += sum(1 for _, v in _values(st, "mqwatch_delayed_overdue_seconds") if v > OVERDUE_GRACE_SECONDS)
    if failing:
        bad.append(_n(failing, "check failing", "checks failing"))
    for status in BAD_STATUSES:
        if statuses.get(status):
            bad.append(f"{_n(len(statuses[status]), 'consumer')} {status}")
    if overdue:
        bad.append(_n(overdue, "delayed queue overdue", "delayed queues overdue"))
    if statuses.get("lagging"):
        warn.append(f"{_n(len(statuses['lagging']), 'consumer')} lagging")
    if receiving:
        warn.append(_n(receiving, "dead-letter queue receiving", "dead-letter queues receiving"))
    if alerts is not None:
        critical = sum(1 for a in alerts.alerts if a.severity == "critical")
        if critical:
            bad.append(_n(critical, "critical alert firing", "critical alerts firing"))
        others = len(alerts.alerts) - critical
        if others:
            warn.append(_n(others, "alert firing", "alerts firing"))
        if alerts.error:
            warn.append("Alertmanager unreadable")
    problems = tuple(bad + warn)
    if bad or warn:
        return Headline(BAD if bad else WARN, problems, " · ".join(problems))
    if pending:
        return Headline(PENDING, (), f"waiting for the first collection of {_n(pending, 'check')}")
    if not states:
        return Headline(PENDING, (), "no checks configured")
    return Headline(OK, (), f"all {_n(len(states), 'check')} collecting; no consumer, dead-letter or delayed queue "
                            "needs attention" + ("; no alert firing" if alerts is not None else ""))
