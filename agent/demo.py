"""`mqwatch demo`: embedded brokers, an e-commerce workload on them, and the agent watching it.

Each system contributes a demo part through the `mqwatch.demo` entry points (named by
its check kind, like `mqwatch.checks`), exactly as a third-party plugin would: the entry
point is a module (checks/<kind>/demo.py) with

    start_broker() -> agent.embedded.Broker        its embedded broker on a free loopback port
    start_workload(broker) -> DemoPart              traffic on it, and the check sections to watch it

The demo writes the config it runs with to a file, so the user sees a working mqwatch.yaml
for the same setup.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from collections.abc import Callable

import yaml

from agent.embedded import BrokerUnavailable
from agent.registry import ENTRY_POINT_GROUP, kind_entry_points, load_entry_point

log = logging.getLogger("mqwatch.demo")

DEMO_ENTRY_POINT_GROUP = "mqwatch.demo"


@dataclass
class DemoPart:
    name: str
    checks: list[dict]  # check sections for mqwatch.yaml
    describe: list[str]  # lines telling the user what is going on
    stop: Callable[[], None]
    urls: dict = field(default_factory=dict)


class Workload:
    """A demo part's traffic threads, started and stopped together."""

    def __init__(self, name: str):
        self.name = name
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, *targets: Callable[[], None]) -> None:
        for target in targets:
            t = threading.Thread(target=target, daemon=True, name=f"demo-{self.name}-{target.__name__}")
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 12.0) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join(timeout=timeout)


def start_parts(only: list[str] | None = None) -> list[DemoPart]:
    """Every installed demo part whose check kind is installed too (or those in `only`);
    a part whose broker cannot start here is skipped with a note on stderr."""
    checks = kind_entry_points(ENTRY_POINT_GROUP)
    parts: list[DemoPart] = []
    for kind, ep in sorted(kind_entry_points(DEMO_ENTRY_POINT_GROUP).items()):
        if (only and kind not in only) or kind not in checks:
            continue
        module = load_entry_point(ep)
        if module is None:
            continue
        try:
            parts.append(_start_part(module))
        except BrokerUnavailable as e:
            print(f"[demo] skipping {kind}: {e}", file=sys.stderr)
        except Exception:
            stop_parts(parts)
            raise
    return parts


def _start_part(module) -> DemoPart:
    broker = module.start_broker()
    try:
        part = module.start_workload(broker)
    except Exception:
        broker.stop()
        raise
    stop_workload = part.stop

    def stop():
        try:
            stop_workload()
        finally:
            broker.stop()

    part.stop = stop
    return part


def stop_parts(parts: list[DemoPart]) -> None:
    for part in reversed(parts):
        try:
            part.stop()
        except Exception as e:
            log.warning("demo_stop_failed part=%s error=%r", part.name, e)


DEMO_ALERTMANAGER = """
route:
  receiver: demo
  group_by: [alertname, cluster]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: demo
"""


def rules_text() -> str | None:
    """The shipped Prometheus rules, from the installed `alerts` package or the checkout."""
    from importlib import resources

    try:
        return resources.files("alerts").joinpath("mqwatch.rules.yml").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def start_prometheus_part(listen: str) -> DemoPart:
    from agent.embedded import start_alertmanager, start_prometheus

    port = listen.rpartition(":")[2]
    alertmanager = start_alertmanager(DEMO_ALERTMANAGER)
    rules = rules_text()
    prom_config = {
        "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
        "scrape_configs": [{"job_name": "mqwatch", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.address]}]}]},
    }
    if rules:
        prom_config["rule_files"] = ["mqwatch.rules.yml"]
    try:
        prometheus = start_prometheus(yaml.safe_dump(prom_config), {"mqwatch.rules.yml": rules} if rules else None)
    except Exception:
        alertmanager.stop()
        raise

    def stop():
        prometheus.stop()
        alertmanager.stop()

    return DemoPart(
        name="prometheus and alertmanager",
        checks=[],
        describe=["Prometheus scrapes the agent every 5s" + (" and evaluates mqwatch's alert rules" if rules else "")],
        stop=stop,
        urls={"prometheus": prometheus.extra["url"] + "/alerts", "alertmanager": alertmanager.extra["url"]},
    )


@dataclass
class Session:
    """A running demo: its brokers, workloads and config. The command line serves the agent
    on it (agent/cli.py); this module never starts the agent itself."""

    args: object
    parts: list[DemoPart]
    workdir: str
    config_path: str
    stop_event: threading.Event = field(default_factory=threading.Event)

    def announce(self, port: int) -> None:
        host = self.args.listen.rpartition(":")[0] or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        lines = ["", "mqwatch demo is running", f"  status page  http://{host}:{port}/",
                 f"  metrics      http://{host}:{port}/metrics", f"  config used  {self.config_path}", ""]
        for p in self.parts:
            lines += [f"  {p.name}:"] + [f"    {d}" for d in p.describe]
            lines += [f"    {k}: {v}" for k, v in p.urls.items()]
        lines += ["", "Press Ctrl-C to stop; every broker the demo started stops with it.", ""]
        print("\n".join(lines), flush=True)

    def close(self) -> None:
        self.stop_event.set()
        stop_parts(self.parts)
        shutil.rmtree(self.workdir, ignore_errors=True)
        print("mqwatch demo stopped; all embedded brokers are down.", flush=True)


def start(args) -> Session | None:
    """Start every demo part and write the agent's config; None (with a message) when no
    broker could start."""
    parts = start_parts(getattr(args, "only", None))
    if not parts:
        print("mqwatch demo: no embedded broker could start (pip install '.[demo]', apt-get install redis-server)",
              file=sys.stderr)
        return None
    workdir = tempfile.mkdtemp(prefix="mqwatch-demo-")
    config_path = os.path.join(workdir, "mqwatch.yaml")
    doc = {"agent": {"listen": args.listen, "interval": "5s", "timeout": "4s"},
           "checks": [c for p in parts for c in p.checks]}
    with open(config_path, "w") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)
    session = Session(args, parts, workdir, config_path)
    if getattr(args, "with_prometheus", False):
        try:
            parts.append(start_prometheus_part(args.listen))
        except BrokerUnavailable as e:
            print(f"[demo] not starting Prometheus/Alertmanager: {e}", file=sys.stderr)
    if args.duration:
        threading.Timer(args.duration, session.stop_event.set).start()
    return session
