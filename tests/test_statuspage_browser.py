"""The status page in headless Chromium at 1280 and 1920 px: it never scrolls sideways, its
headline badge is green for a healthy system and red for a broken one, and it lists the alerts
firing in a real Alertmanager with their runbooks.

The broken system is real: a Redis (the session's redis-server) holding a dead-letter list
that grows with very long exception names, a delayed queue ten minutes overdue and a stream
group nobody consumes; the alerts are posted to a real Alertmanager through its API (what
Prometheus does), so this test does not depend on rule timings (tests/test_demo.py covers those).
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import redis
import yaml

from mqwatch.agent.app import Agent
from mqwatch.agent.backend import AgentBackend
from mqwatch.agent.config import parse_config
from mqwatch.agent.embedded import free_port, start_alertmanager
from mqwatch.agent.server import HTTPServer
from tests.helpers import wait_until
from tests.ops.stack import prometheus_available

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTHS = (1280, 1920)
BADGE = {"ok": (0x1A, 0x7F, 0x37), "bad": (0xCF, 0x22, 0x2E)}  # the page's .badge.ok / .badge.bad
LONG_REASON = "com.example.fulfilment.warehouse.integration.reservation.InventoryReservationTimeoutExceptionAfterRetries"
LONG_QUEUE = "jobs:fulfilment:warehouse-eu-central-1:inventory-reservation-and-allocation"
MEASURE = """<script>
const root = document.documentElement, badge = document.getElementById('headline');
document.body.dataset.scrollWidth = root.scrollWidth;
document.body.dataset.clientWidth = root.clientWidth;
document.body.dataset.badge = badge ? getComputedStyle(badge).backgroundColor : '';
</script>"""

pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by ./mqw test; run through it"),
              pytest.mark.skipif(not prometheus_available(), reason="Debian prometheus-alertmanager missing")]


def chromium(*args, timeout=60) -> str:
    profile = tempfile.mkdtemp(prefix="mqwatch-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--hide-scrollbars",
             f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def measure(html: str, width: int, tmp: Path) -> dict:
    """Lay the page out at `width` px and read what the browser computed."""
    page = tmp / f"page-{width}.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"))
    dom = chromium("--dump-dom", f"--window-size={width},900", page.as_uri())
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', re.search(r"<body[^>]*>", dom).group(0)))
    return {"scroll": int(attrs["scroll-width"]), "client": int(attrs["client-width"]), "badge": attrs["badge"]}


def badge_pixels(url: str, width: int, name: str) -> dict:
    """Screenshot the served page; how many pixels have each badge colour."""
    from PIL import Image

    shot = ROOT / "artifacts" / f"status-page-{name}-{width}.png"
    shot.parent.mkdir(exist_ok=True)
    chromium(f"--screenshot={shot}", f"--window-size={width},1000", url)
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    counts = {c: n for n, c in colours}
    return {level: counts.get(rgb, 0) for level, rgb in BADGE.items()}


def serve(text: str):
    agent = Agent(parse_config(text, "page.yaml", {}))
    server = HTTPServer(AgentBackend(agent), "127.0.0.1", free_port())
    server.start()
    agent.start()
    return agent, server


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def post_alerts(am_url: str, alerts: list[dict]) -> None:
    req = urllib.request.Request(f"{am_url}/api/v2/alerts", json.dumps(alerts).encode(),
                                 {"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=10).close()


@pytest.fixture(scope="module")
def alertmanager():
    am = start_alertmanager(yaml.safe_dump({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]}))
    yield am
    am.stop()


def _alert(name: str, severity: str, **labels) -> dict:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"labels": {"alertname": name, "severity": severity, "system": "redis", "cluster": "jobs", **labels},
            "annotations": {"summary": f"{name} on {labels}", "runbook_url": f"https://runbooks.example/{name}.md"},
            "startsAt": (now - datetime.timedelta(minutes=3)).isoformat(),
            "endsAt": (now + datetime.timedelta(minutes=10)).isoformat()}


def _config(port: int, db: int, alertmanager_url: str = "") -> str:
    am = f", alertmanager_url: '{alertmanager_url}'" if alertmanager_url else ""
    return (f"agent: {{interval: 500ms, timeout: 2s{am}}}\n"
            f"checks:\n  - {{kind: redis, name: jobs, url: 'redis://127.0.0.1:{port}/{db}',"
            f" keys: ['jobs:*', 'delay:*', 'stream:*'], dlq_keys: ['*:dead']}}\n")


def test_status_page_fits_the_screen_and_its_badge_says_healthy_or_broken(redis_server, alertmanager, tmp_path):
    healthy_db, broken_db = 13, 14
    redis.Redis(host="127.0.0.1", port=redis_server.port, db=healthy_db).flushdb()
    r = redis.Redis(host="127.0.0.1", port=redis_server.port, db=broken_db)
    r.flushdb()
    dead = f"{LONG_QUEUE}:dead"
    for i in range(5):
        r.lpush(dead, json.dumps({"order": i, "error": f"{LONG_REASON}{i % 2}"}))
    r.zadd("delay:order-timeouts", {json.dumps({"order": i}): time.time() - 600 for i in range(3)})
    r.xadd("stream:payments", {"order": 1})
    r.xgroup_create("stream:payments", "ledger", id="0")  # lag and no consumer: stopped
    am = alertmanager.extra["url"]
    post_alerts(am, [_alert("MqwatchDelayedQueueOverdue", "critical", queue="delay:order-timeouts"),
                     _alert("MqwatchDLQReceivingMessages", "warning", dlq=dead, source=LONG_QUEUE)])
    broken, broken_server = serve(_config(redis_server.port, broken_db, am))
    healthy, healthy_server = serve(_config(redis_server.port, healthy_db))
    broken_url, healthy_url = (f"http://127.0.0.1:{s.port}/" for s in (broken_server, healthy_server))
    try:
        wait_until(lambda: broken.ready() and healthy.ready(), 20, message="both agents collected")
        r.lpush(dead, json.dumps({"order": 99, "error": LONG_REASON + "X"}))  # the DLQ is receiving
        page = wait_until(lambda: (p := get(broken_url)) and "dead-letter queue receiving" in p and p, 20,
                          message="the DLQ growth on the page")
        pages = {"broken": (broken_url, page, "bad", "ok"), "healthy": (healthy_url, get(healthy_url), "ok", "bad")}
        for name, (url, html, level, other) in pages.items():
            for width in WIDTHS:
                m = measure(html, width, tmp_path)
                assert m["client"] == width and m["scroll"] <= width, f"{name} at {width}px scrolls sideways: {m}"
                assert m["badge"] == "rgb({}, {}, {})".format(*BADGE[level]), (name, width, m)
                pixels = badge_pixels(url, width, name)
                # the other colour only in small text (a green `up`, a red `stopped`), never a badge
                assert pixels[level] > 2000 and pixels[other] < 300, (name, width, pixels)
    finally:
        for agent, server in ((broken, broken_server), (healthy, healthy_server)):
            agent.stop()
            server.stop()
    headline = re.search(r'<p id="headline"[^>]*>([^<]*)<', page).group(1)
    for problem in ("1 consumer stopped", "1 delayed queue overdue", "1 dead-letter queue receiving",
                    "1 critical alert firing", "1 alert firing"):
        assert problem in headline, headline
    assert "all 1 check collecting" in pages["healthy"][1]
    # firing alerts with their runbooks; a long reason is cut on screen, whole on hover
    assert ">MqwatchDelayedQueueOverdue</td>" in page and ">MqwatchDLQReceivingMessages</td>" in page
    assert "href='https://runbooks.example/MqwatchDelayedQueueOverdue.md'" in page
    assert f"<span class='cut' title='{LONG_REASON}1 (2)'>" in page


def test_the_overflow_measurement_sees_a_page_wider_than_the_screen(tmp_path):
    wide = "<html><body><p id='headline'>x</p><div style='width:1500px'>wide</div></body></html>"
    m = measure(wide, 1280, tmp_path)
    assert m["client"] == 1280 and m["scroll"] >= 1500


def test_an_unreadable_alertmanager_is_said_on_the_page(redis_server):
    db = 12
    redis.Redis(host="127.0.0.1", port=redis_server.port, db=db).flushdb()
    nowhere = f"http://127.0.0.1:{free_port()}"
    agent, server = serve(_config(redis_server.port, db, nowhere))
    try:
        wait_until(agent.ready, 20, message="the agent collected")
        page = get(f"http://127.0.0.1:{server.port}/")
    finally:
        agent.stop()
        server.stop()
    assert 'data-level="warn"' in page and "Alertmanager unreadable" in page
    assert f"Alertmanager at {nowhere} could not be read" in page
