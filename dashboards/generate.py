"""Generate mqwatch's Grafana dashboards (dashboards/*.json) with grafana-foundation-sdk.

    python -m mqwatch.dashboards.generate            # rewrite the committed JSON
    python -m mqwatch.dashboards.generate --check    # exit 1 if the committed JSON is out of date

One overview of every cluster (worst consumers by lag in seconds, DLQ arrivals, overdue delayed
queues, broker and collection health) links to one dashboard per system and one for dead-letter
queues. Every dashboard has `datasource`, `cluster`, `queue` and `consumer` variables. Panels are
described by the small `Panel` records below; the builders turn them into Grafana's JSON.

Several agents may report the same series (sidecars): every sum and count first aggregates away
the reporting agent (`instance`, `pod`), as the alert rules do. Lag panels draw the alert's
threshold (from alerts/thresholds.yaml), health tiles turn red, and panels an alert is computed
from link to its runbook.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.common import BigValueColorMode, GraphTresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync, DashboardLinkType, DataSourceRef, Threshold, ThresholdsMode, ValueMap, ValueMappingResult,
    VariableRefresh, VariableSort,
)

from mqwatch.alerts.generate import load_config as load_alert_config
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT_DIR = Path(__file__).resolve().parent
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "mqwatch"
SYSTEMS = ("kafka", "redis", "pulsar")
UID = {"overview": "mqwatch-overview", "kafka": "mqwatch-kafka", "redis": "mqwatch-redis",
       "pulsar": "mqwatch-pulsar", "dlq": "mqwatch-dlq"}
MSG_PER_S = units.CountsPerSecond
ALERTS_CONFIG = load_alert_config()
RUNBOOKS = ALERTS_CONFIG["runbook_base_url"].rstrip("/")
AGENT = "instance, pod"  # the labels of the agent that reported a series


def threshold_of(alert: str) -> float:
    return float(ALERTS_CONFIG["alerts"][alert]["threshold_seconds"])


def one(expr: str) -> str:
    """One series per object however many agents report it (sidecars): sum only after this."""
    return f"max without ({AGENT}) ({expr})"


def _field(label: str, table: bool) -> str:
    # A table of an instant query has one column per label (${__data.fields.x}); a time series
    # has one field per series whose labels are ${__field.labels.x}.
    return f"${{__data.fields.{label}}}" if table else f"${{__field.labels.{label}}}"


def link_to(uid: str, title: str, table: bool = False, **labels: str) -> db.DashboardLink:
    """A data link to another mqwatch dashboard, carrying the clicked series' labels and the time range."""
    vars_ = "".join(f"&var-{var}={_field(label, table)}" for var, label in labels.items())
    return db.DashboardLink(title).url(f"/d/{uid}?${{__url_time_range}}&var-datasource=${{datasource}}{vars_}")


def system_link(table: bool = False, **labels: str) -> db.DashboardLink:
    # The overview mixes systems; the clicked series' `system` picks the detail dashboard.
    vars_ = "".join(f"&var-{var}={_field(label, table)}" for var, label in labels.items())
    system = _field("system", table)
    return (db.DashboardLink(f"Open the {system} dashboard")
            .url(f"/d/mqwatch-{system}?${{__url_time_range}}&var-datasource=${{datasource}}{vars_}"))


def runbook(alert: str) -> db.DashboardLink:
    return db.DashboardLink(f"Runbook: {alert}").url(f"{RUNBOOKS}/{alert}.md").target_blank(True)


# Health tiles: 0 is a failure and must not read as a green "Off".
HEALTH_MAPPINGS = [ValueMap({"0": ValueMappingResult(text="Failing", color="red", index=0),
                             "1": ValueMappingResult(text="OK", color="green", index=1)})]
HEALTH_STEPS = [Threshold(None, "red"), Threshold(1.0, "green")]


@dataclass
class Panel:
    title: str
    description: str
    exprs: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = units.Short
    kind: str = "timeseries"  # timeseries | stat | table
    width: int = 12
    height: int = 8
    links: list = field(default_factory=list)
    min: float | None = 0
    threshold: float | None = None  # the alert's threshold, drawn on a time series or colouring a tile
    health: bool = False  # a 1 = healthy / 0 = failing tile
    sort_desc: str | None = None  # table column to sort by, worst (highest) first
    runbooks: tuple[str, ...] = ()  # alerts computed from this panel's data


@dataclass
class Row:
    title: str
    panels: list[Panel]


def S(system: str | None, *, queue_label: str | None = "queue", consumer: bool = False, consumer_opt: bool = False,
      extra: str = "") -> str:
    """The label matchers of a panel query: fixed system, then the dashboard's variables.
    consumer_opt: the series may lack `consumer` (Kafka DLQs); "All" must keep them."""
    parts = [f'system="{system}"'] if system else []
    parts.append('cluster=~"$cluster"')
    if queue_label:
        parts.append(f'{queue_label}=~"$queue"')
    if consumer:
        parts.append('consumer=~"$consumer"')
    if consumer_opt:
        parts.append('consumer=~"$consumer|"')
    if extra:
        parts.append(extra)
    return "{" + ", ".join(parts) + "}"


def _build_panel(p: Panel, panel_id: int):
    if p.kind == "stat":
        builder = stat.Panel()
    elif p.kind == "table":
        builder = table.Panel()
    else:
        builder = timeseries.Panel().fill_opacity(10).line_width(1)
    builder = (builder.id(panel_id).title(p.title).description(p.description).datasource(DATASOURCE)
               .unit(p.unit).span(p.width).height(p.height))
    if p.min is not None:
        builder = builder.min(p.min)
    for i, (expr, legend) in enumerate(p.exprs):
        query = prometheus.Dataquery().expr(expr).ref_id(chr(ord("A") + i)).datasource(DATASOURCE)
        if p.kind == "table":
            query = query.instant().format(PromQueryFormat.TABLE)
        elif legend:
            query = query.legend_format(legend)
        builder = builder.with_target(query)
    if p.links:
        builder = builder.data_links(p.links)
    if p.runbooks:
        builder = builder.links([runbook(a) for a in p.runbooks])
    if p.health:
        builder = (builder.mappings(HEALTH_MAPPINGS)
                   .thresholds(db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(HEALTH_STEPS))
                   .color_mode(BigValueColorMode.BACKGROUND))
    elif p.threshold is not None:
        steps = [Threshold(None, "green"), Threshold(p.threshold, "red")]
        builder = builder.thresholds(db.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
        if p.kind == "timeseries":
            builder = builder.thresholds_style(cb.GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED))
    if p.sort_desc:
        builder = builder.sort_by([cb.TableSortByFieldState().display_name(p.sort_desc).desc(True)])
    return builder


def _variables(system: str | None, queue_metric: str, queue_label: str = "queue",
               consumer_metric: str = "mqwatch_consumer_lag_messages", extra=()):
    sys_match = f'system="{system}", ' if system else ""

    def query_var(name, label, query, description):
        return (db.QueryVariable(name).label(label).description(description).datasource(DATASOURCE)
                .query(query).multi(True).include_all(True).all_value(".*")
                .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC))

    return [
        db.DatasourceVariable("datasource").label("Data source").type("prometheus")
        .description("The Prometheus that scrapes the mqwatch agents."),
        query_var("cluster", "Cluster", f"label_values(mqwatch_up{{{sys_match.rstrip(', ')}}}, cluster)"
                  if system else "label_values(mqwatch_up, cluster)",
                  "The `cluster` label: the `name` of an mqwatch check."),
        query_var("queue", "Queue", f'label_values({queue_metric}{{{sys_match}cluster=~"$cluster"}}, {queue_label})',
                  "Topic, stream, list or job queue."),
        query_var("consumer", "Consumer",
                  f'label_values({consumer_metric}{{{sys_match}cluster=~"$cluster"}}, consumer)',
                  "Consumer group (Kafka, Redis streams) or subscription (Pulsar)."),
    ] + [query_var(*v) for v in extra]


def build_dashboard(key: str, title: str, description: str, system: str | None, rows: list[Row],
                    queue_metric: str = "mqwatch_queue_messages", queue_label: str = "queue", **variables):
    builder = (db.Dashboard(title).uid(UID[key]).description(description).tags([TAG] + ([system] if system else []))
               .editable().tooltip(DashboardCursorSync.CROSSHAIR).refresh("30s").time("now-3h", "now")
               .timezone("browser").variables(_variables(system, queue_metric, queue_label, **variables))
               .link(db.DashboardLink("mqwatch dashboards").type(DashboardLinkType.DASHBOARDS).tags([TAG])
                     .as_dropdown(True).include_vars(True).keep_time(True)))
    panel_id = 1
    for row in rows:
        builder = builder.with_row(db.Row(row.title).id(panel_id))
        panel_id += 1
        for p in row.panels:
            builder = builder.with_panel(_build_panel(p, panel_id))
            panel_id += 1
    return builder.build()


# ---- the dashboards ----------------------------------------------------------------------------

DLQ_VAR = 'dlq=~"$dlq"'
STUCK = 'status=~"stalled|stopped"'
LAG_ALERTS = ("MqwatchConsumerLagHigh", "MqwatchConsumerStalled", "MqwatchConsumerStopped")


def overview():
    lag_by = "system, cluster, queue, consumer"
    lag_sel = f"mqwatch_consumer_lag_seconds{S(None, consumer=True)}"
    lag = f"max by ({lag_by}) ({lag_sel})"
    # topk in a range query picks the top 10 at every step (more than 10 series over the range):
    # rank once, by the worst value over the whole range, at its end.
    worst_over_range = f"topk(10, max by ({lag_by}) (max_over_time({lag_sel}[$__range] @ end())))"
    status_sel = f"mqwatch_consumer_status{S(None, consumer=True)}"
    stuck_sel = f"mqwatch_consumer_status{S(None, consumer=True, extra=STUCK)}"
    dlq_held = f"max by (system, cluster, framework, dlq, source) (mqwatch_dlq_messages{S(None, queue_label='source')})"
    c = S(None, queue_label=None)
    return build_dashboard("overview", "mqwatch / Overview",
                           "Every cluster mqwatch watches: what is firing, who is behind, what is dead-lettered or "
                           "overdue, and whether brokers, collection and the agents are healthy. Click a row or a "
                           "series to open its detail dashboard.",
                           None, [
        Row("Now", [
            Panel("Firing mqwatch alerts", "Alerts of the mqwatch rules firing now, most severe first. Click a row "
                  "for its runbook.",
                  (('sum by (alertname, severity, system, cluster, queue, consumer, dlq) '
                    '(ALERTS{alertname=~"Mqwatch.*", alertstate="firing"})', ""),), units.Short, kind="table",
                  sort_desc="severity",
                  links=[db.DashboardLink("Runbook for ${__data.fields.alertname}")
                         .url(f"{RUNBOOKS}/${{__data.fields.alertname}}.md").target_blank(True)]),
            Panel("Stalled or stopped consumers", "Consumers the agent evaluates as stalled (members but no "
                  "progress) or stopped (nobody consuming) while messages wait, with their lag in seconds. Click a "
                  "row to open the system's dashboard for that consumer.",
                  ((f"max by ({lag_by}, status) ({stuck_sel}) == 1", ""),
                   (f"max by ({lag_by}) ({lag_sel}) and on ({lag_by}) (max by ({lag_by}) ({stuck_sel}) == 1)", "")),
                  units.Seconds, kind="table",
                  links=[system_link(table=True, cluster="cluster", queue="queue", consumer="consumer")],
                  runbooks=("MqwatchConsumerStalled", "MqwatchConsumerStopped")),
        ]),
        Row("Consumers", [
            Panel("Worst consumers by lag (seconds)",
                  "The 10 consumers whose oldest unconsumed message is oldest, across all systems, worst first. "
                  "Click a row to open the system's dashboard for that consumer.",
                  ((f"topk(10, {lag})", ""),), units.Seconds, kind="table", sort_desc="Value",
                  threshold=threshold_of("MqwatchConsumerLagHigh"),
                  links=[system_link(table=True, cluster="cluster", queue="queue", consumer="consumer")],
                  runbooks=LAG_ALERTS),
            Panel("Lag in seconds, worst 10 over time", "Age of the oldest unconsumed message of the 10 consumers "
                  "that were furthest behind in the time range; the dashed line is the lag alert's threshold.",
                  ((f"{lag} and on ({lag_by}) {worst_over_range}", "{{system}} {{cluster}} {{queue}} / {{consumer}}"),),
                  units.Seconds, threshold=threshold_of("MqwatchConsumerLagHigh"),
                  links=[system_link(cluster="cluster", queue="queue", consumer="consumer")], runbooks=LAG_ALERTS),
            Panel("Consumers by status", "How many consumer/queue pairs mqwatch evaluates as ok, lagging, stalled, "
                  "stopped or rewound (see the consumer status rules in docs).",
                  ((f'count by (status) ({one(status_sel)} == 1)', "{{status}}"),), units.Short),
            Panel("Lag in messages by system", "Messages waiting for their consumers, summed per system and cluster.",
                  ((f"sum by (system, cluster) ({one('mqwatch_consumer_lag_messages' + S(None, consumer=True))})",
                    "{{system}} {{cluster}}"),), units.Short,
                  links=[system_link(cluster="cluster")]),
        ]),
        _flow_overview_row(),
        Row("Dead letters and delayed work", [
            Panel("Worst dead-letter queues", "The 10 DLQs holding the most dead letters, worst first. Click a row "
                  "to open the dead-letter dashboard for its source queue.",
                  ((f"topk(10, {dlq_held})", ""),), units.Short, kind="table", sort_desc="Value",
                  links=[link_to(UID["dlq"], "Open the dead-letter dashboard", table=True, cluster="cluster",
                                 queue="source", dlq="dlq")],
                  runbooks=("MqwatchDLQReceivingMessages", "MqwatchDLQNotDrained")),
            Panel("DLQ arrivals", "Messages that arrived in each dead-letter queue per interval (from the monotonic "
                  "`mqwatch_dlq_messages_total`). Click to open the dead-letter dashboard.",
                  (("sum by (system, cluster, framework, dlq, source) ("
                    + one(f"increase(mqwatch_dlq_messages_total{S(None, queue_label='source')}[$__rate_interval])")
                    + ")", "{{cluster}} {{dlq}}"),), units.Short,
                  links=[link_to(UID["dlq"], "Open the dead-letter dashboard", cluster="cluster", queue="source",
                                 dlq="dlq")],
                  runbooks=("MqwatchDLQReceivingMessages",)),
            Panel("Overdue delayed queues", "How late the most overdue entry of each delayed queue is; above zero "
                  "means the poller that moves due work is not keeping up or died. The dashed line is the alert's "
                  "threshold.",
                  ((f"max by (system, cluster, framework, queue) (mqwatch_delayed_overdue_seconds{S(None)})",
                    "{{system}} {{cluster}} {{queue}}"),), units.Seconds,
                  threshold=threshold_of("MqwatchDelayedQueueOverdue"),
                  links=[system_link(cluster="cluster", queue="queue")], runbooks=("MqwatchDelayedQueueOverdue",)),
        ]),
        Row("Brokers and collection", [
            Panel("Brokers", "Brokers each cluster reports (Kafka metadata, Pulsar active brokers).",
                  ((f"max by (system, cluster) (mqwatch_brokers{c})", "{{system}} {{cluster}}"),),
                  units.Short, kind="stat", width=8, links=[system_link(cluster="cluster")],
                  runbooks=("MqwatchKafkaBrokersDown",)),
            Panel("Checks collecting", "OK when the last collection of a check succeeded on every agent; Failing "
                  "(red) means mqwatch cannot reach that cluster (see the agent's /status page for the error).",
                  ((f"min by (system, cluster) (mqwatch_up{c})", "{{system}} {{cluster}}"),),
                  units.NoUnit, kind="stat", width=8, health=True, links=[system_link(cluster="cluster")],
                  runbooks=("MqwatchCheckFailing", "MqwatchCheckStale")),
            Panel("Collection errors", "Collection errors per check and reason per interval (timeouts, connection, "
                  "auth, broker errors; partial errors count too). A check that never failed shows 0.",
                  # The counter only exists once a check has failed; `or` shows healthy checks as 0.
                  (("sum by (system, cluster, reason) ("
                    + one(f"increase(mqwatch_collect_errors_total{c}[$__rate_interval])") + ") or on (system, cluster) "
                    f"(0 * min by (system, cluster) (mqwatch_up{c}))",
                    "{{system}} {{cluster}} {{reason}}"),), units.Short, width=8, runbooks=("MqwatchCollectErrors",)),
            Panel("Collection duration", "How long each check's last collection took; compare with its interval.",
                  ((f"max by (system, cluster) (mqwatch_collect_duration_seconds{c})",
                    "{{system}} {{cluster}}"),), units.Seconds),
            Panel("Seconds since last successful collection", "Staleness of each check's data; the dashed line is "
                  "the stale-data alert's threshold.",
                  ((f"time() - max by (system, cluster) (mqwatch_last_success_timestamp_seconds{c})",
                    "{{system}} {{cluster}}"),), units.Seconds, threshold=threshold_of("MqwatchCheckStale"),
                  runbooks=("MqwatchCheckStale",)),
        ]),
        Row("mqwatch agents", [
            Panel("Agents scraped", "Each mqwatch agent Prometheus scrapes: OK, or Failing (red) when it cannot be "
                  "scraped. No tile at all means no agent is scraped.",
                  ((f"up{{{ALERTS_CONFIG['target_selector']}}}", "{{instance}}"),), units.NoUnit, kind="stat",
                  width=8, health=True, runbooks=("MqwatchTargetDown", "MqwatchTargetMissing")),
            Panel("Agent versions", "Agents by mqwatch version (a rollout in progress shows two).",
                  (('count by (version) (mqwatch_build_info)', "{{version}}"),), units.Short, kind="stat", width=8),
            Panel("Series per check", "Series each check exported in its last collection (a sudden drop means "
                  "objects went missing).",
                  ((f"max by (system, cluster) (mqwatch_check_series{c})", "{{system}} {{cluster}}"),), units.Short,
                  width=8),
        ]),
    ])


def _consumer_rows(system: str, backlog_word: str) -> list[Panel]:
    q = S(system, consumer=True)
    return [
        Panel(f"Lag in messages ({backlog_word})", "Messages produced but not yet consumed, per consumer and queue.",
              ((f"sum by (cluster, queue, consumer) ({one('mqwatch_consumer_lag_messages' + q)})",
                "{{cluster}} {{queue}} / {{consumer}}"),), units.Short),
        Panel("Lag in seconds", "Age of the oldest message each consumer has not consumed yet; 0 when caught up. "
              "The dashed line is the lag alert's threshold.",
              ((f"max by (cluster, queue, consumer) (mqwatch_consumer_lag_seconds{q})",
                "{{cluster}} {{queue}} / {{consumer}}"),), units.Seconds,
              threshold=threshold_of("MqwatchConsumerLagHigh"), runbooks=LAG_ALERTS),
    ]


# ---- flow (issue 14): consume vs produce, drain ETA, reprocessing and redelivery, loss ---------------

# Grafana draws +Inf (a consumer not gaining) nowhere; capped, it shows as a line at the top.
DRAIN_CAP_SECONDS = 7 * 86400


def _drain_expr(by: str, matchers: str) -> str:
    return f"clamp_max(max by ({by}) (mqwatch_consumer_drain_seconds{matchers}), {DRAIN_CAP_SECONDS})"


def _per_interval(metric: str, by: str, matchers: str, fn: str = "increase") -> str:
    return f"sum by ({by}) ({one(f'{fn}({metric}{matchers}[$__rate_interval])')})"


def _flow_row(system: str) -> Row:
    """Is each consumer catching up, when will it be done, and are messages consumed twice or lost?"""
    qc = S(system, consumer=True)
    q = S(system)
    by = "cluster, queue, consumer"
    panels = [
        Panel("Consume vs produce rate", "Messages consumed per second by each consumer "
              "(`mqwatch_consumer_consumed_total`) against messages produced per second to its queue. A consumer "
              "whose line stays below its queue's is falling behind.",
              ((_per_interval("mqwatch_consumer_consumed_total", by, qc, "rate"), "{{queue}} / {{consumer}} consumed"),
               (_per_interval("mqwatch_queue_produced_total", "cluster, queue", q, "rate"), "{{queue}} produced")),
              MSG_PER_S),
        Panel("Drain ETA", "Seconds until each consumer's lag is zero at its current net drain rate (consume minus "
              "produce); 0 when caught up. A consumer that is not gaining (+Inf) is drawn at the 7-day cap.",
              ((_drain_expr(by, qc), "{{queue}} / {{consumer}}"),), units.Seconds,
              threshold=threshold_of("MqwatchConsumerNotDraining"), runbooks=("MqwatchConsumerNotDraining",)),
    ]
    redelivery, runbooks = [], []
    if system in ("kafka", "redis"):
        redelivery.append((_per_interval("mqwatch_consumer_reprocessed_messages_total", by, qc),
                           "{{queue}} / {{consumer}} reprocessed"))
        runbooks.append("MqwatchReprocessingSpike")
    if system == "redis":
        redelivery.append((f"max by ({by}) (mqwatch_pending_max_deliveries{qc})",
                           "{{queue}} / {{consumer}} most deliveries of one message"))
        runbooks.append("MqwatchPoisonMessage")
    if redelivery:
        panels.append(Panel("Reprocessed and redelivered", "Messages a consumer will consume again because its "
                            "position moved back (per interval), and the highest delivery count among unacknowledged "
                            "messages (a poison message keeps rising).", tuple(redelivery), units.Short,
                            runbooks=tuple(runbooks)))
    panels.append(Panel("Lost messages", "Messages the broker deleted before the consumer read them, per interval "
                        "(retention, stream trimming, TTL).",
                        ((_per_interval("mqwatch_consumer_lost_messages_total", by, qc), "{{queue}} / {{consumer}}"),),
                        units.Short, runbooks=("MqwatchMessagesLost",)))
    if system in ("kafka", "pulsar"):
        panels.append(Panel("Retention headroom", "How long until retention (Kafka retention.ms; Pulsar TTL or "
                            "eviction quota) deletes messages the consumer has not read. Absent where the broker does "
                            "not tell its retention.",
                            ((f"min by ({by}) (mqwatch_consumer_retention_headroom_seconds{qc})",
                              "{{queue}} / {{consumer}}"),), units.Seconds,
                            threshold=threshold_of("MqwatchRetentionHeadroomLow"),
                            runbooks=("MqwatchRetentionHeadroomLow",)))
    return Row("Flow: catching up, consumed twice, lost", panels)


def _flow_overview_row() -> Row:
    qc = S(None, consumer=True)
    by = "system, cluster"
    return Row("Flow", [
        Panel("Consume vs produce rate by system", "Messages consumed and produced per second, summed per system "
              "and cluster: consumption below production means backlogs grow.",
              ((_per_interval("mqwatch_consumer_consumed_total", by, qc, "rate"), "{{system}} {{cluster}} consumed"),
               (_per_interval("mqwatch_queue_produced_total", by, S(None), "rate"), "{{system}} {{cluster}} produced")),
              MSG_PER_S, links=[system_link(cluster="cluster")]),
        Panel("Longest drain ETAs", "The 10 consumers that will take longest to catch up at their current net "
              "drain rate; a consumer not gaining (+Inf) shows the 7-day cap. Click a row to open the system's "
              "dashboard for that consumer.",
              ((f"topk(10, {_drain_expr('system, cluster, queue, consumer', qc)})", ""),), units.Seconds,
              kind="table", links=[system_link(table=True, cluster="cluster", queue="queue", consumer="consumer")],
              runbooks=("MqwatchConsumerNotDraining",)),
        Panel("Reprocessed, redelivered and lost", "Per system: messages to be consumed again after a rewind and "
              "messages deleted unread (per interval), and the highest delivery count of a pending message.",
              ((_per_interval("mqwatch_consumer_reprocessed_messages_total", by, qc), "{{system}} {{cluster}} reprocessed"),
               (_per_interval("mqwatch_consumer_lost_messages_total", by, qc), "{{system}} {{cluster}} lost"),
               (f"max by ({by}) (mqwatch_pending_max_deliveries{qc})", "{{system}} {{cluster}} most deliveries")),
              units.Short, links=[system_link(cluster="cluster")],
              runbooks=("MqwatchReprocessingSpike", "MqwatchMessagesLost", "MqwatchPoisonMessage")),
    ])


def _canary_row(system: str) -> Row:
    c = S(system, queue_label=None)
    buckets = one(f"rate(mqwatch_canary_roundtrip_seconds_bucket{c}[$__rate_interval])")
    return Row("End-to-end canary (when enabled)", [
        Panel("Canary round trip", "Time from producing a canary message to consuming it back: what a real "
              "producer/consumer pair experiences. Empty unless the check's canary is enabled.",
              ((f"histogram_quantile(0.5, sum by (cluster, le) ({buckets}))",
                "{{cluster}} p50"),
               (f"histogram_quantile(0.99, sum by (cluster, le) ({buckets}))",
                "{{cluster}} p99")), units.Seconds, threshold=threshold_of("MqwatchCanarySlow"),
              runbooks=("MqwatchCanarySlow",)),
        Panel("Canary failures", "Canary round trips that failed per interval, by stage (produce, consume, timeout).",
              # The counter exists only after a first failure; `or` shows a healthy canary as 0.
              ((f"sum by (cluster, stage) ({one(f'increase(mqwatch_canary_failures_total{c}[$__rate_interval])')})"
                f" or on (cluster) (0 * min by (cluster) (mqwatch_up{c}))", "{{cluster}} {{stage}}"),), units.Short,
              runbooks=("MqwatchCanaryFailing",)),
        Panel("Canary messages lost, duplicated, reordered", "Sequence-numbered canary messages the broker "
              "acknowledged that never came back, came back twice, or came back after a later one, per interval.",
              tuple((f"sum by (cluster) ({one(f'increase(mqwatch_canary_{k}_messages_total{c}[$__rate_interval])')})",
                     f"{{{{cluster}}}} {k}") for k in ("lost", "duplicated", "reordered")), units.Short,
              runbooks=("MqwatchCanaryMessagesLost", "MqwatchCanaryMessagesDuplicated")),
    ])


def kafka():
    q = S("kafka", consumer=True)
    t = S("kafka")
    c = S("kafka", queue_label=None)
    g = S("kafka", queue_label=None, consumer=True)
    return build_dashboard("kafka", "mqwatch / Kafka", "Kafka consumer groups, topics and broker health.", "kafka", [
        Row("Consumer groups", _consumer_rows("kafka", "summed over partitions") + [
            Panel("Consumer status", "Evaluated status of each group on each topic: ok, lagging, stalled (members "
                  "but no progress), stopped (no members, no progress), rewound.",
                  ((f'max by (cluster, queue, consumer, status) (mqwatch_consumer_status{q}) == 1', ""),), units.Short,
                  kind="table", runbooks=("MqwatchConsumerStalled", "MqwatchConsumerStopped", "MqwatchConsumerLagging")),
            Panel("Members", "Consumers joined to each group (Kafka counts members per group, not per topic).",
                  ((f"max by (cluster, consumer) (mqwatch_consumer_members{g})", "{{cluster}} {{consumer}}"),),
                  units.Short, runbooks=("MqwatchConsumerGroupEmptyLagGrowing",)),
            Panel("Group state", "The state the broker reports for each group (Stable, Empty, rebalancing, Dead).",
                  ((f'max by (cluster, consumer, state) (mqwatch_consumer_state{g}) == 1', ""),), units.Short,
                  kind="table"),
        ]),
        _flow_row("kafka"),
        Row("Topics", [
            Panel("Produce rate", "Messages produced per second to each topic.",
                  ((f"sum by (cluster, queue) ({one(f'rate(mqwatch_queue_produced_total{t}[$__rate_interval])')})",
                    "{{cluster}} {{queue}}"),), MSG_PER_S),
            Panel("Retained messages", "Messages currently retained per topic.",
                  ((f"sum by (cluster, queue) ({one('mqwatch_queue_messages' + t)})", "{{cluster}} {{queue}}"),),
                  units.Short),
        ]),
        Row("Brokers", [
            Panel("Brokers", "Brokers in the cluster metadata.",
                  ((f"max by (cluster) (mqwatch_brokers{c})", "{{cluster}}"),), units.Short, kind="stat", width=6,
                  runbooks=("MqwatchKafkaBrokersDown",)),
            Panel("Controller", "Broker id of the active controller (-1: none); frequent changes mean an unstable "
                  "cluster.",
                  ((f"max by (cluster) (mqwatch_kafka_controller_id{c})", "{{cluster}}"),), units.NoUnit,
                  kind="stat", width=6, min=None, runbooks=("MqwatchKafkaNoController",)),
            Panel("Under-replicated and offline partitions", "Partitions whose ISR is short of their replicas, and "
                  "partitions without a leader.",
                  ((f"sum by (cluster) ({one('mqwatch_kafka_under_replicated_partitions' + t)})",
                    "{{cluster}} under-replicated"),
                   (f"sum by (cluster) ({one('mqwatch_kafka_offline_partitions' + t)})", "{{cluster}} offline")),
                  units.Short, runbooks=("MqwatchKafkaUnderReplicatedPartitions", "MqwatchKafkaOfflinePartitions")),
            Panel("Partitions per topic", "Partition count of each topic.",
                  ((f"max by (cluster, queue) (mqwatch_kafka_topic_partitions{t})", ""),),
                  units.Short, kind="table"),
        ]),
        _canary_row("kafka"),
    ])


def redis():
    q = S("redis")
    qc = S("redis", consumer=True)
    c = S("redis", queue_label=None)
    return build_dashboard("redis", "mqwatch / Redis",
                           "Redis lists, delayed sorted sets, streams, job frameworks and server health.", "redis", [
        Row("Queues and delayed work", [
            Panel("Queue length", "Messages waiting in each list, stream or job-framework queue.",
                  ((f"sum by (cluster, framework, queue) ({one('mqwatch_queue_messages' + q)})",
                    "{{cluster}} {{framework}} {{queue}}"),),
                  units.Short),
            Panel("Job queue latency", "Age of the oldest job waiting in each Sidekiq, RQ, BullMQ, Celery or "
                  "plain-list queue (how long a job waits before a worker takes it). The dashed line is the alert's "
                  "threshold.",
                  ((f"max by (cluster, framework, queue) (mqwatch_redis_queue_latency_seconds{q})",
                    "{{cluster}} {{framework}} {{queue}}"),),
                  units.Seconds, threshold=threshold_of("MqwatchJobQueueLatencyHigh"),
                  runbooks=("MqwatchJobQueueLatencyHigh",)),
            Panel("Delayed queue: most overdue entry", "How late the most overdue entry of each due-time sorted set "
                  "is (Sidekiq schedule/retry, BullMQ delayed, your own delay queues); 0 when none is overdue.",
                  ((f"max by (cluster, framework, queue) (mqwatch_delayed_overdue_seconds{q})",
                    "{{cluster}} {{framework}} {{queue}}"),),
                  units.Seconds, threshold=threshold_of("MqwatchDelayedQueueOverdue"),
                  runbooks=("MqwatchDelayedQueueOverdue",)),
            Panel("Delayed and overdue entries", "Entries scheduled for later, and those whose due time passed.",
                  ((f"sum by (cluster, framework, queue) ({one('mqwatch_delayed_messages' + q)})",
                    "{{cluster}} {{framework}} {{queue}} scheduled"),
                   (f"sum by (cluster, framework, queue) ({one('mqwatch_delayed_overdue_messages' + q)})",
                    "{{cluster}} {{framework}} {{queue}} overdue")), units.Short),
        ]),
        Row("Streams and pending work", _consumer_rows("redis", "stream consumer groups") + [
            Panel("Pending (unacknowledged) messages", "Delivered to a consumer but never acknowledged (XPENDING, "
                  "processing lists, Celery unacked).",
                  ((f"sum by (cluster, framework, queue, consumer) ({one('mqwatch_pending_messages' + q)})",
                    "{{cluster}} {{framework}} {{queue}} {{consumer}}"),), units.Short),
            Panel("Oldest pending message", "Age of the oldest delivered but unacknowledged message.",
                  ((f"max by (cluster, framework, queue, consumer) (mqwatch_pending_oldest_seconds{q})",
                    "{{cluster}} {{framework}} {{queue}} {{consumer}}"),), units.Seconds,
                  threshold=threshold_of("MqwatchPendingTooOld"), runbooks=("MqwatchPendingTooOld",)),
            Panel("Consumers per group", "Consumers of each stream consumer group, per stream (a group name can "
                  "exist on several streams).",
                  ((f"max by (cluster, queue, consumer) (mqwatch_consumer_members{qc})",
                    "{{cluster}} {{queue}} / {{consumer}}"),), units.Short,
                  runbooks=("MqwatchConsumerGroupEmptyLagGrowing",)),
            Panel("Least idle consumer", "Idle time of the most recently active consumer of each group.",
                  ((f"min by (cluster, queue, consumer) (mqwatch_consumer_idle_seconds{qc})",
                    "{{cluster}} {{queue}} {{consumer}}"),), units.Seconds),
        ]),
        _flow_row("redis"),
        Row("Server", [
            Panel("Memory used of maxmemory", "Used memory as a share of maxmemory (instances without maxmemory are "
                  "not shown).",
                  ((f"max by (cluster) (mqwatch_redis_used_memory_bytes{c} / (mqwatch_redis_maxmemory_bytes{c} > 0))",
                    "{{cluster}}"),), units.PercentUnit, min=0,
                  threshold=float(ALERTS_CONFIG["alerts"]["MqwatchRedisMemoryNearLimit"]["threshold_ratio"]),
                  runbooks=("MqwatchRedisMemoryNearLimit",)),
            Panel("Memory used", "Bytes of memory Redis uses.",
                  ((f"max by (cluster) (mqwatch_redis_used_memory_bytes{c})", "{{cluster}}"),), units.BytesIEC),
            Panel("Evicted keys", "Keys evicted per interval because maxmemory was reached.",
                  ((f"sum by (cluster) ({one(f'increase(mqwatch_redis_evicted_keys_total{c}[$__rate_interval])')})",
                    "{{cluster}}"),), units.Short, runbooks=("MqwatchRedisEvicting",)),
        ]),
        _canary_row("redis"),
    ])


def pulsar():
    q = S("pulsar")
    qc = S("pulsar", consumer=True)
    c = S("pulsar", queue_label=None)
    return build_dashboard("pulsar", "mqwatch / Pulsar", "Pulsar subscriptions, topics and broker health.", "pulsar", [
        Row("Subscriptions", _consumer_rows("pulsar", "backlog") + [
            Panel("Unacknowledged messages", "Messages delivered to the subscription's consumers but not acked.",
                  ((f"sum by (cluster, queue, consumer) ({one('mqwatch_pending_messages' + qc)})",
                    "{{cluster}} {{queue}} / {{consumer}}"),), units.Short),
            Panel("Blocked subscriptions", "1 while the broker stops dispatching to a subscription because it holds "
                  "too many unacknowledged messages.",
                  ((f"max by (cluster, queue, consumer) (mqwatch_consumer_blocked{qc})",
                    "{{cluster}} {{queue}} / {{consumer}}"),), units.Short,
                  runbooks=("MqwatchPulsarSubscriptionBlocked",)),
            Panel("Consumers", "Consumers connected to each subscription, per topic (a subscription name can exist "
                  "on several topics).",
                  ((f"max by (cluster, queue, consumer) (mqwatch_consumer_members{qc})",
                    "{{cluster}} {{queue}} / {{consumer}}"),), units.Short,
                  runbooks=("MqwatchConsumerGroupEmptyLagGrowing",)),
        ]),
        _flow_row("pulsar"),
        Row("Topics", [
            Panel("Publish rate", "Messages published per second to each topic (partitions summed).",
                  ((f"sum by (cluster, queue) ({one(f'rate(mqwatch_queue_produced_total{q}[$__rate_interval])')})",
                    "{{cluster}} {{queue}}"),), MSG_PER_S),
            Panel("Storage", "Bytes stored per topic.",
                  ((f"sum by (cluster, queue) ({one('mqwatch_queue_bytes' + q)})", "{{cluster}} {{queue}}"),),
                  units.BytesIEC),
        ]),
        Row("Brokers", [
            Panel("Active brokers", "Brokers the cluster reports as active.",
                  ((f"max by (cluster) (mqwatch_brokers{c})", "{{cluster}}"),), units.Short, kind="stat"),
            Panel("Broker health", "OK when a broker passes its health check (admin API or metrics reachability); "
                  "Failing (red) otherwise.",
                  ((f"min by (cluster, broker) (mqwatch_pulsar_broker_healthy{c})", "{{cluster}} {{broker}}"),),
                  units.NoUnit, kind="stat", health=True, runbooks=("MqwatchPulsarBrokerUnhealthy",)),
        ]),
        _canary_row("pulsar"),
    ])


def dlq():
    # `queue` holds source queues here (the queue the dead letters came from); `dlq` the DLQs.
    d = S(None, queue_label="source", consumer_opt=True, extra=DLQ_VAR)
    return build_dashboard("dlq", "mqwatch / Dead-letter queues",
                           "Dead-letter and retry queues of every system: arrivals, size, age and failure reasons. "
                           "The queue variable selects the source queue the dead letters came from; consumer the "
                           "Pulsar subscription or Redis group (Kafka DLQs have none).", None, [
        Row("Arrivals", [
            Panel("Dead letters arriving", "Messages that arrived in each DLQ per interval; survives retention and "
                  "removal of dead letters.",
                  ((f"sum by (system, cluster, framework, dlq, source) "
                    f"({one(f'increase(mqwatch_dlq_messages_total{d}[$__rate_interval])')})",
                    "{{system}} {{cluster}} {{dlq}}"),), units.Short,
                  links=[system_link(cluster="cluster", queue="source")], runbooks=("MqwatchDLQReceivingMessages",)),
            Panel("Messages in DLQs", "Dead letters currently held.",
                  ((f"sum by (system, cluster, framework, dlq, source) ({one('mqwatch_dlq_messages' + d)})",
                    "{{system}} {{cluster}} {{dlq}}"),), units.Short, runbooks=("MqwatchDLQNotDrained",)),
        ]),
        Row("Why and since when", [
            Panel("Top failure reasons", "Sampled dead letters by failure reason read from headers or job data "
                  "(top reasons per DLQ; the rest as `other`), most frequent first.",
                  ((f"topk(20, max by (system, cluster, framework, dlq, reason) "
                    f"(mqwatch_dlq_reason_messages{S(None, queue_label=None, extra=DLQ_VAR)}))", ""),),
                  units.Short, kind="table", sort_desc="Value"),
            Panel("Newest dead letter age", "Time since the newest message arrived in each DLQ.",
                  ((f"time() - max by (system, cluster, framework, dlq, source) (mqwatch_dlq_last_message_timestamp_seconds{d})",
                    "{{system}} {{cluster}} {{dlq}}"),), units.Seconds),
            Panel("Retry queues", "Messages waiting in retry queues or topics of the selected source queues.",
                  ((f"sum by (system, cluster, queue, source) ({one('mqwatch_retry_messages' + S(None, queue_label='source'))})",
                    "{{system}} {{cluster}} {{queue}}"),), units.Short, runbooks=("MqwatchRetryQueueGrowing",)),
        ]),
    ], queue_metric="mqwatch_dlq_messages", queue_label="source", consumer_metric="mqwatch_dlq_messages",
       extra=(("dlq", "DLQ", 'label_values(mqwatch_dlq_messages{cluster=~"$cluster", source=~"$queue"}, dlq)',
               "Dead-letter queue (topic, list or set) of the selected source queues."),))


DASHBOARDS = {"overview": overview, "kafka": kafka, "redis": redis, "pulsar": pulsar, "dlq": dlq}

# What Grafana sends in place of the variables when "All" is selected (and a typical interval).
ALL_SELECTED = {"$cluster": ".*", "$queue": ".*", "$consumer": ".*", "$dlq": ".*", "$__rate_interval": "1m",
                "$__interval": "15s", "$__range": "3h"}


def substitute(expr: str, values: dict | None = None) -> str:
    for var, value in (values or ALL_SELECTED).items():
        expr = expr.replace(var, value)
    if "$" in expr:
        raise ValueError(f"unsubstituted variable in {expr}")
    return expr


def panel_queries(names=None) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, PromQL with variables substituted) for every panel target."""
    import json

    out = []
    for name in names or DASHBOARDS:
        doc = json.loads(render(name))
        for panel in doc["panels"]:
            for target in panel.get("targets") or []:
                out.append((name, panel["title"], substitute(target["expr"])))
    return out


def render(name: str) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(DASHBOARDS[name]()) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mqwatch.dashboards.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when a committed dashboard differs from the output")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = ap.parse_args(argv)
    stale = []
    for name in DASHBOARDS:
        path = args.out_dir / f"{name}.json"
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
    if stale:
        print("out of date (run `python -m mqwatch.dashboards.generate`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
