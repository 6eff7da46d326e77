"""The HTML status page at `/`: each check's health at a glance."""

from __future__ import annotations

import html
import time


def render_status_page(agent) -> str:
    now = time.time()
    rows = []
    for st in sorted(agent.exporter.states(), key=lambda s: s.key):
        if st.snapshot is None:
            health, cls = "pending", "pending"
        else:
            health, cls = ("up", "up") if st.up else ("down", "down")
        age = "never" if st.last_success is None else f"{now - st.last_success:.0f}s ago"
        rows.append(
            f"<tr class='{cls}'><td>{html.escape(st.kind)}</td><td>{html.escape(st.name)}</td>"
            f"<td class='health'>{health}</td><td>{age}</td>"
            f"<td>{'' if st.last_duration is None else f'{st.last_duration:.3f}s'}</td>"
            f"<td>{st.snapshot.series if st.snapshot else 0}</td><td>{html.escape(st.last_error)}</td></tr>"
        )
    lag_rows = []
    for st in agent.exporter.states():
        if not st.up:
            continue
        for labels, value in st.snapshot.families.get("mqwatch_consumer_lag_messages", ()):
            d = dict(labels)
            secs = st.snapshot.value("mqwatch_consumer_lag_seconds", queue=d.get("queue", ""), consumer=d.get("consumer", ""))
            lag_rows.append((secs if secs is not None else -1, value, st.kind, st.name, d.get("queue", ""), d.get("consumer", "")))
    lag_rows.sort(reverse=True)
    lag_html = "".join(
        f"<tr><td>{html.escape(k)}/{html.escape(n)}</td><td>{html.escape(q)}</td><td>{html.escape(c)}</td>"
        f"<td>{m:.0f}</td><td>{'' if s < 0 else f'{s:.1f}s'}</td></tr>"
        for s, m, k, n, q, c in lag_rows[:20]
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mqwatch</title>
<meta http-equiv="refresh" content="10">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .3em .8em; text-align: left; }}
tr.up .health {{ color: #1a7f37; font-weight: bold; }}
tr.down .health {{ color: #cf222e; font-weight: bold; }}
tr.pending .health {{ color: #9a6700; }}
</style></head>
<body><h1>mqwatch</h1>
<p><a href="/metrics">/metrics</a> · <a href="/status">/status</a> · ready: {agent.ready()}</p>
<h2>Checks</h2>
<table><tr><th>system</th><th>cluster</th><th>health</th><th>last success</th><th>duration</th><th>series</th><th>last error</th></tr>
{''.join(rows)}</table>
<h2>Worst consumers</h2>
<table><tr><th>check</th><th>queue</th><th>consumer</th><th>lag (messages)</th><th>lag (seconds)</th></tr>
{lag_html}</table>
</body></html>
"""
